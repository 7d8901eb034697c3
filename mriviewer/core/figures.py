"""Publication figures of a comparison (grid of panes + metric curves), rendered headless.

Uses matplotlib's object API with the Agg/SVG/PDF canvases directly (never pyplot, never Qt), so
the GUI's export and scripts produce the same figure from the same arrays, levels and colour maps.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import MriViewerError
from mriviewer.core.files import atomic_write_path, atomic_write_text

FIGURE_FORMATS = ("png", "svg", "pdf")


#: y-axis labels of the per-iteration curves (ground-truth-free measures included)
CURVE_LABELS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "nmse": "NMSE",
    "dc_residual": "DC residual ||MFSx-y||/||y||",
    "rel_change": "relative change",
}


@dataclass
class FigurePane:
    """One image pane: ``image`` is a real ``(h, w)`` array already in display form."""

    title: str
    image: np.ndarray
    error: np.ndarray | None = None  # (h, w) error map under the pane, or None


@dataclass
class FigureCurve:
    """One method's metric curve: iterations and values per metric name (e.g. ``psnr``)."""

    label: str
    iterations: list[int]
    values: dict[str, list[float]]
    color: str | None = None


@dataclass
class FigureSpec:
    """Everything the figure shows; levels are ``(low, high)`` as on screen."""

    panes: list[FigurePane]
    levels: tuple[float, float]
    cmap: str = "gray"
    error_levels: tuple[float, float] | None = None
    error_cmap: str = "inferno"
    curves: list[FigureCurve] = field(default_factory=list)
    curve_metrics: tuple[str, ...] = ("psnr", "ssim")
    current_iteration: int | None = None
    colorbar_label: str = "magnitude"
    note: str = ""
    max_columns: int = 4


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def render_figure(spec: FigureSpec, dpi: int = 200):
    """Build a matplotlib ``Figure`` (not yet saved) from ``spec``."""
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

    if not spec.panes:
        raise MriViewerError("nothing to export: the figure has no image panes")
    n = len(spec.panes)
    ncols = max(1, min(spec.max_columns, n))
    nrows_img = math.ceil(n / ncols)
    has_err = any(p.error is not None for p in spec.panes)
    rows_per = 2 if has_err else 1
    n_curve = len(spec.curve_metrics) if spec.curves else 0
    img_rows = nrows_img * rows_per
    height_ratios = [1.0] * img_rows + ([0.9] if n_curve else [])
    fig = Figure(figsize=(2.6 * ncols + 1.0, 2.6 * img_rows + (2.4 if n_curve else 0) + 0.4))
    gs = GridSpec(
        len(height_ratios),
        ncols + 1,
        figure=fig,
        height_ratios=height_ratios,
        width_ratios=[1.0] * ncols + [0.06],
        hspace=0.35,
        wspace=0.08,
    )
    lo, hi = spec.levels
    im = None
    err_im = None
    for i, pane in enumerate(spec.panes):
        r, c = divmod(i, ncols)
        ax = fig.add_subplot(gs[r * rows_per, c])
        im = ax.imshow(np.asarray(pane.image, dtype=float), cmap=spec.cmap, vmin=lo, vmax=hi)
        ax.set_title(pane.title, fontsize=8)
        ax.set_axis_off()
        if has_err:
            eax = fig.add_subplot(gs[r * rows_per + 1, c])
            eax.set_axis_off()
            if pane.error is not None:
                elo, ehi = spec.error_levels or (0.0, float(np.nanmax(pane.error)) or 1.0)
                err_im = eax.imshow(
                    np.asarray(pane.error, dtype=float), cmap=spec.error_cmap, vmin=elo, vmax=ehi
                )
    cax = fig.add_subplot(gs[0, ncols])
    fig.colorbar(im, cax=cax).set_label(spec.colorbar_label, fontsize=8)
    cax.tick_params(labelsize=7)
    if err_im is not None:
        ecax = fig.add_subplot(gs[1, ncols])
        fig.colorbar(err_im, cax=ecax).set_label("|error|", fontsize=8)
        ecax.tick_params(labelsize=7)
    if n_curve:
        sub = gs[img_rows, :ncols].subgridspec(1, n_curve, wspace=0.3)
        for j, metric in enumerate(spec.curve_metrics):
            ax = fig.add_subplot(sub[0, j])
            for curve in spec.curves:
                vals = curve.values.get(metric)
                if not vals:
                    continue
                ax.plot(
                    curve.iterations,
                    vals,
                    marker="o",
                    ms=2.5,
                    lw=1.2,
                    label=curve.label,
                    color=curve.color,
                )
            if spec.current_iteration is not None:
                ax.axvline(spec.current_iteration, color="0.4", ls="--", lw=0.8)
            ax.set_xlabel("iteration", fontsize=8)
            ax.set_ylabel(CURVE_LABELS.get(metric, metric.upper()), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.legend(fontsize=7, frameon=False)
    if spec.note:
        fig.text(0.01, 0.005, spec.note, fontsize=7, color="0.3", ha="left", va="bottom")
    return fig


def save_figure(
    spec: FigureSpec, path: str | Path, sidecar: dict[str, Any] | None = None, dpi: int = 200
) -> Path:
    """Render ``spec`` to ``path`` (format from the suffix: png, svg, pdf) atomically.

    If ``sidecar`` is given it is written as JSON to ``<path>.json`` (e.g. ``fig.pdf.json``)
    with the figure's own SHA-256 added. Returns the figure path.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise MriViewerError(
            f"unsupported figure format {fmt!r}; use one of {', '.join(FIGURE_FORMATS)}", path
        )
    fig = render_figure(spec, dpi=dpi)
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    if sidecar is not None:
        data = dict(sidecar)
        data["figure"] = {"path": path.name, "format": fmt, "sha256": sha256_file(path)}
        data.setdefault("levels", list(spec.levels))
        data.setdefault("cmap", spec.cmap)
        atomic_write_text(sidecar_path(path), json.dumps(data, indent=2, default=_json_default))
    return path


def sidecar_path(path: str | Path) -> Path:
    """Where :func:`save_figure` writes the JSON sidecar of ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
