"""The comparison session of a cine (2-D + time) series, Qt-free: what the app presents in its
cine mode and what scripts drive headless.

:class:`CineSession` is a :class:`~mriviewer.core.session.ComparisonSession` whose k-space is
the ``(T, C, H, W)`` series of one cine slice, whose mask is a ``(T, H, W)`` k-t mask
(:func:`mriviewer.core.physics.kt_masks.make_kt_mask`) and whose traces hold ``(T, h, w)``
images per iteration (:func:`mriviewer.core.runs.execute` streams them). The current ``frame``
selects what every pane shows: ``reference`` is the reference series' frame and
:meth:`frame_image` slices a trace's image. Metrics are over the series (fastMRI per-volume,
frames stacked as slices) and per frame (``psnr_per_frame``).

An undersampled cine file (a scanner's accelerated cine, a file with a ``mask`` dataset or zeros
where not sampled) opens with its own k-t sampling
(:func:`mriviewer.core.cine.detect_kt_sampling`) as the mask, R per frame and overall in the
mask note; without the file's own reference there is no ground truth: the reference pane shows
the zero-filled RSS per frame and the runs report the data-consistency residual instead of
PSNR/SSIM/NMSE, as the 2-D session does.

:func:`write_cine_animation` writes the comparison as an animated GIF or an MP4 (imageio; MP4
through imageio-ffmpeg), one animation frame per cine frame: the panes side by side with one
window/level, enlarged to a readable size, titled with the method and the frame's PSNR/SSIM,
under a header line with the frame index (:func:`render_animation_frames`, text by matplotlib).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer import __version__
from mriviewer.core.errors import MaskError, MriViewerError
from mriviewer.core.session import REFERENCE, ComparisonSession


@dataclass
class KtMask:
    """A ``(T, H, W)`` k-t mask with the spec that drew it (the cine counterpart of
    :class:`~mriviewer.core.physics.masks.SamplingMask`)."""

    array: np.ndarray
    spec: Any
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def achieved_acceleration(self) -> float:
        return float(self.array.size / max(int(self.array.sum()), 1))

    def summary(self) -> dict[str, Any]:
        from mriviewer.core.physics.kt_masks import kt_summary

        return kt_summary(self.array)

    def ky_t(self) -> np.ndarray:
        """``(T, W)`` bool: the phase-encode lines each frame samples (frames down)."""
        return self.array.any(axis=1)


class CineSession(ComparisonSession):
    """One cine comparison (see the module docstring)."""

    is_cine = True

    def __init__(self) -> None:
        super().__init__()
        self.frame = 0
        #: ``(T, h, w)`` float32: the reference series (file's RSS, or the run's convention);
        #: for undersampled data without a file reference, the zero-filled RSS per frame
        self.cine_reference: np.ndarray | None = None
        #: the data's own k-t sampling of the shown slice (:class:`mriviewer.core.cine.KtSampling`)
        self.kt_sampling: Any = None

    # ----- file, slice and frame ----------------------------------------------------------------
    @property
    def frames(self) -> int:
        return 0 if self.kspace is None else int(self.kspace.shape[0])

    def open(
        self,
        path: str | Path,
        slice_index: int | None = None,
        encoding: int | None = None,
        prewhiten: bool = True,
    ) -> None:
        """Open a cine file (or ``demo-cine``) at ``slice_index`` (default: the middle one)."""
        from mriviewer.core.io.cine import open_cine

        volume = open_cine(path)
        index = volume.num_slices // 2 if slice_index is None else volume.select_index(slice_index)
        data = self.read_slice(volume, index)
        volume.slice_index = index
        volume.whitened = False
        self.volume = volume
        self._set_cine(*data)

    def select_slice(self, index: int) -> None:
        if self.volume is None:
            raise MriViewerError("no file is open")
        index = self.volume.select_index(index)
        data = self.read_slice(self.volume, index)
        self.volume.slice_index = index
        self._set_cine(*data)

    @staticmethod
    def read_slice(volume, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(T, C, H, W)`` k-space and the ``(T, h, w)`` reference (the file's, else the RSS
        per frame of the fully sampled k-space, cropped to the recon matrix)."""
        from mriviewer.core.images import center_crop
        from mriviewer.core.physics.fft import ifft2c_np, rss

        kspace = volume.read_kspace(index)
        reference = volume.read_reference(index)
        if reference is None:
            reference = np.stack(
                [center_crop(rss(ifft2c_np(f)), volume.recon_matrix) for f in kspace]
            ).astype(np.float32)
        return kspace, reference

    def _set_cine(self, kspace: np.ndarray, reference: np.ndarray) -> None:
        from mriviewer.core.cine import detect_kt_sampling
        from mriviewer.core.physics.sampling import detect_sampling

        self._set_slice(kspace, reference[0], detect_sampling(kspace[0]))
        self.kt_sampling = detect_kt_sampling(kspace, getattr(self.volume, "mask", None))
        self.cine_reference = reference
        has_file_reference = self.volume is not None and self.volume.has_reference
        self.ground_truth = bool(self.kt_sampling.fully_sampled or has_file_reference)
        self.reference_kind = self.reference_choice if self.ground_truth else None
        self.mask = None  # a new series: the k-t mask is drawn again
        if not self.kt_sampling.fully_sampled:
            self.use_data_sampling()  # an accelerated cine: its own k-t sampling is the mask
        elif self.mask_kind == "data":
            self.mask_kind = "random"
        self.frame = 0
        self.set_frame(0)

    @property
    def undersampled(self) -> bool:
        """True when the shown slice's data are themselves undersampled."""
        return self.kt_sampling is not None and not self.kt_sampling.fully_sampled

    def reload_reference(self) -> None:
        if self.volume is not None:
            _, self.cine_reference = self.read_slice(self.volume, self.volume.slice_index)
            self.set_frame(self.frame)

    def set_frame(self, frame: int) -> int:
        """Show frame ``frame`` (wrapped into the series); returns it."""
        if self.cine_reference is None:
            return 0
        self.frame = int(frame) % int(self.cine_reference.shape[0])
        self.reference = self.cine_reference[self.frame]
        return self.frame

    def frame_image(self, image: np.ndarray) -> np.ndarray:
        """The current frame of a ``(T, h, w)`` image (2-D images pass through)."""
        return image[self.frame] if np.ndim(image) == 3 else image

    def reference_title(self) -> str:
        if not self.ground_truth:
            return (
                "acquired data, zero-filled RSS per frame (no ground truth)<br>"
                f"frame {self.frame} / {self.frames - 1}"
            )
        kind = self.reference_kind or self.reference_choice
        name = {"rss": "RSS", "sense": "SENSE"}.get(kind, kind)
        return f"reference ({name} per frame)<br>frame {self.frame} / {self.frames - 1}"

    def metrics_note(self) -> str:
        if not self.ground_truth:
            sampled = self.kt_sampling.describe() if self.kt_sampling is not None else "R ?"
            return (
                f"cine k-space undersampled ({sampled}): no ground truth, no PSNR/SSIM/NMSE; "
                "shown: data-consistency residual ||M F S x - y|| / ||y|| over the series and "
                "change per iteration"
            )
        data_range = float(self.cine_reference.max()) if self.cine_reference is not None else 0.0
        return (
            f"{self.reference_description()}, per frame; PSNR/SSIM/NMSE over the series "
            "(fastMRI per-volume, frames stacked as slices) on |image|, data_range = max(reference "
            f"series) = {data_range:.4g}; PSNR per frame with the same data_range"
        )

    # ----- k-t mask -----------------------------------------------------------------------------
    def make_mask(self, spec) -> None:
        """Draw the ``(T, H, W)`` k-t mask of ``spec`` (kind random or equispaced; raises
        MaskError otherwise, the previous mask stays)."""
        from mriviewer.core.physics.kt_masks import make_kt_mask

        if self.kspace is None:
            raise MaskError("open a cine file first")
        t, _, h, w = self.kspace.shape
        self.mask = KtMask(make_kt_mask(spec, t, (h, w)), spec)
        self.mask_kind = spec.kind
        self.mask_file = None

    def use_data_sampling(self) -> None:
        """The data's own k-t sampling becomes the mask (kind ``data``); MaskError for a fully
        sampled series (draw a random or equispaced k-t mask there)."""
        from mriviewer.core.physics.masks import MaskSpec

        if self.kspace is None:
            raise MaskError("open a cine file first")
        if not self.undersampled:
            raise MaskError(
                "this cine series is fully sampled: draw a random or equispaced k-t mask"
            )
        spec = MaskSpec(kind="array", acceleration=1.0, seed=None)
        self.mask = KtMask(self.kt_sampling.pattern.copy(), spec)
        self.mask_kind = "data"
        self.mask_file = None

    def set_mask_array(self, array: np.ndarray, source_file: str | None = None) -> None:
        raise MaskError("k-t masks are drawn from the mask panel's settings (random / equispaced)")

    def load_mask(self, path: str | Path) -> None:
        raise MaskError("loading k-t masks is not supported yet")

    def save_mask(self, path: str | Path) -> None:
        from mriviewer.core.files import atomic_write_path

        if self.mask is None:
            raise MaskError("no mask yet: open a file first")
        with atomic_write_path(Path(path)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, self.mask.array, allow_pickle=False)

    def effective_mask(self) -> np.ndarray | None:
        """The k-t points a run uses: the mask, within the data's own sampling when the
        series is undersampled."""
        if self.mask is None:
            return None
        if self.undersampled:
            return self.mask.array & self.kt_sampling.pattern
        return self.mask.array

    def achieved(self) -> tuple[float, int, int]:
        arr = self.effective_mask()
        sampled = int(arr.sum())
        return arr.size / max(sampled, 1), sampled, int(arr.size)

    def acceleration_per_frame(self) -> list[float]:
        if self.mask is None:
            return []
        return [float(f.size / max(int(f.sum()), 1)) for f in self.effective_mask()]

    def mask_note(self) -> str:
        per = self.acceleration_per_frame()
        if not per:
            return ""
        if max(per) - min(per) < 1e-6:
            note = f"R per frame: {per[0]:.2f} in each of the {len(per)} frames"
        else:
            note = "R per frame: " + " ".join(f"{r:.1f}" for r in per)
        if self.undersampled:
            own = self.kt_sampling
            if self.mask_kind == "data":
                note = f"data's own k-t sampling ({own.source}), {note}, R {self.achieved()[0]:.2f}"
            else:
                note = f"mask on top of the data's own k-t sampling ({own.describe()}); {note}"
        return note

    def acs_band(self) -> tuple[int, int] | None:
        return None

    def set_acs_band(self, c0: int, c1: int) -> bool:
        return False

    def edit_mask(self, row: int, col: int, add: bool) -> bool:
        raise MaskError("k-t masks are not edited by hand yet")

    def mask_description(self) -> str:
        if self.mask is None:
            return "no mask"
        if self.mask_kind == "data":
            return (
                f"the data's own k-t sampling ({self.kt_sampling.source}), {self.frames} frames, "
                f"{self.kt_sampling.describe()}"
            )
        spec = self.mask.spec
        return (
            f"k-t {spec.kind} R {spec.acceleration:g} per frame, centre fraction "
            f"{spec.center_fraction:g}, seed {spec.seed}, {self.frames} frames, achieved R "
            f"{self.mask.achieved_acceleration:.2f}"
        )

    # ----- runs ---------------------------------------------------------------------------------
    no_data_message = "open a cine file first"

    def run_inputs(self) -> tuple[np.ndarray, np.ndarray, str, bool | None]:
        """The effective k-t mask, the reference series, the metrics region, and
        whether the series is fully sampled (undersampled: no ground truth unless the file
        has its own reference)."""
        fully = self.kt_sampling.fully_sampled if self.kt_sampling is not None else True
        return self.effective_mask().copy(), self.cine_reference, self.metrics_region, fully

    def apply(self, message: tuple) -> None:
        if message[0] == "prepared":
            info = message[1]
            self.reference_kind = info.get("reference_kind")
            if info.get("reference") is not None:
                self.cine_reference = np.asarray(info["reference"], dtype=np.float32)
                self.set_frame(self.frame)
            self.run_warnings = list(info.get("warnings") or [])
            return
        super().apply(message)

    # ----- per frame and temporal views ---------------------------------------------------------
    def series(self, key: str, iteration: int) -> np.ndarray | None:
        """``(T, h, w)`` of ``key`` at its latest iteration <= ``iteration`` (REFERENCE: the
        reference series); None before its first iterate."""
        if key == REFERENCE:
            return self.cine_reference
        trace = self.traces.get(key)
        idx = None if trace is None else trace.index_at(iteration)
        return None if idx is None else trace.images[idx]

    def frame_psnr(self, key: str, iteration: int) -> list[float]:
        """PSNR per frame (dB) of ``key`` at ``iteration`` ([] before its first iterate)."""
        trace = self.traces.get(key)
        idx = None if trace is None else trace.index_at(iteration)
        if idx is None:
            return []
        return [float(v) for v in trace.metrics[idx].get("psnr_per_frame", [])]

    def temporal_profile(self, key: str, iteration: int, row: int) -> np.ndarray | None:
        """``(T, w)`` magnitude along image row ``row`` over the frames (an x-t image)."""
        series = self.series(key, iteration)
        if series is None:
            return None
        row = int(np.clip(row, 0, series.shape[1] - 1))
        return np.abs(series[:, row, :]).astype(np.float32)

    # ----- provenance ---------------------------------------------------------------------------
    def provenance(self, view: dict[str, Any], out_path: Path | None = None) -> dict[str, Any]:
        from mriviewer.core.figures import sha256_file

        info: dict[str, Any] = {"mriviewer": __version__, "dynamic": True}
        if self.volume is not None:
            info["file"] = {
                "path": str(self.volume.path),
                "sha256": sha256_file(self.volume.path),
                "format": self.volume.format,
            }
            info["slice"] = self.volume.slice_index
        info["frames"] = self.frames
        info["frame"] = self.frame
        if self.kt_sampling is not None:
            info["data_sampling"] = self.kt_sampling.to_dict()
        if self.mask is not None:
            info["mask"] = {
                "kind": self.mask_kind,
                "spec": self.mask.spec.to_dict(),
                "shape": list(self.mask.shape),
                "achieved_acceleration": self.mask.achieved_acceleration,
                "acceleration_per_frame": self.acceleration_per_frame(),
            }
        iteration = view.get("iteration", self.max_iteration())
        methods = []
        for key, trace in self.traces.items():
            entry: dict[str, Any] = {"name": key, "label": trace.label, "settings": trace.settings}
            entry["complete"] = trace.complete
            idx = trace.index_at(iteration)
            if idx is not None:
                entry["iteration"] = trace.iterations[idx]
                entry["metrics"] = trace.metrics[idx]
            methods.append(entry)
        info["methods"] = methods
        info["ground_truth"] = bool(self.ground_truth)
        info["reference"] = self.reference_kind if self.ground_truth else None
        info["reference_definition"] = self.reference_description() + " (per frame)"
        info["metrics_region"] = self.metrics_region if self.ground_truth else None
        info["metrics"] = (
            "PSNR/SSIM/NMSE over the series (fastMRI per-volume, frames stacked as slices); "
            "psnr_per_frame with the series' data_range"
            if self.ground_truth
            else "no ground truth: data-consistency residual ||M F S x - y|| / ||y|| over the "
            "series and the relative change per iteration"
        )
        info["warnings"] = list(self.run_warnings)
        for key in ("device", "display", "levels", "error_levels"):
            info[key] = view.get(key)
        info["iteration"] = iteration
        return info


#: file suffixes :func:`write_cine_animation` writes
ANIMATION_FORMATS = ("gif", "mp4")
#: each pane is enlarged by an integer factor (nearest neighbour) to at least this many pixels
#: along its longer side, so a 64 x 64 series gives 256 x 256 panes
MIN_PANE_PIXELS = 256
#: layout of an animation frame in pixels: outer margin, gap between panes, header band and
#: one title line above the panes
ANIMATION_MARGIN = 8
ANIMATION_GAP = 8
ANIMATION_HEADER = 30
ANIMATION_LINE = 22
#: grey level of the bands and gaps around the panes (dark, so that black pane edges still show)
ANIMATION_BACKGROUND = 48


@dataclass
class AnimationPane:
    """One pane of a cine animation: ``series`` ``(T, h, w)`` real, already in display form;
    ``captions`` one line per frame under the title (e.g. the frame's PSNR/SSIM), or None."""

    title: str
    series: np.ndarray
    captions: list[str] | None = None


def _window_uint8(array: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    lo, hi = float(levels[0]), float(levels[1])
    span = hi - lo if hi > lo else 1.0
    return (np.clip((np.asarray(array) - lo) / span, 0.0, 1.0) * 255).round().astype(np.uint8)


def frame_metric_captions(reference: np.ndarray, series: np.ndarray) -> list[str]:
    """``"PSNR 31.20 dB  SSIM 0.912"`` per frame of ``series`` against the ``(T, h, w)``
    ``reference``: magnitudes, data_range = max(|reference series|), as the per-frame PSNR of
    :func:`mriviewer.core.cine.cine_metrics`."""
    from mriviewer.core.metrics import psnr, ssim

    ref = np.abs(np.asarray(reference)).astype(np.float64)
    pred = np.abs(np.asarray(series)).astype(np.float64)
    if ref.shape != pred.shape:
        raise MriViewerError(f"series of shape {pred.shape} against a reference of {ref.shape}")
    dr = float(ref.max()) or 1.0
    pairs = list(zip(ref, pred, strict=True))
    return frame_captions([psnr(r, p, dr) for r, p in pairs], [ssim(r, p, dr) for r, p in pairs])


def frame_captions(psnr_per_frame: list[float], ssim_per_frame: list[float]) -> list[str]:
    """``"PSNR 31.20 dB  SSIM 0.912"`` per frame from metrics already computed (e.g. ``recon``'s
    ``psnr_per_frame`` / ``ssim_per_frame``)."""
    return [
        f"PSNR {p:.2f} dB  SSIM {s:.3f}"
        for p, s in zip(psnr_per_frame, ssim_per_frame, strict=True)
    ]


def pane_scale(h: int, w: int, min_pixels: int = MIN_PANE_PIXELS) -> int:
    """The integer enlargement that brings the longer side of an ``h x w`` pane to at least
    ``min_pixels`` (1 for panes already that large)."""
    return max(1, -(-int(min_pixels) // max(int(h), int(w), 1)))


def _fit(text: str, pixels: int, char_pixels: float) -> str:
    """``text`` cut (with an ellipsis) to about ``pixels`` wide at ``char_pixels`` per character."""
    n = max(4, int(pixels / char_pixels))
    return text if len(text) <= n else text[: n - 1] + "…"


#: pixels per character assumed for the header's 13-pt text when it is wrapped or cut
HEADER_CHAR_PIXELS = 8.0


def animation_header_lines(header: str, frames: int, pixels: int) -> list[list[str]]:
    """Header text per frame, as lines that fit ``pixels``: ``frame t of 0-(T-1)`` and
    ``header`` on one line where the longest frame's line fits, else the frame line and then
    ``header`` wrapped at its ``·`` separators (words where a part is still too long). Every
    frame has the same number of lines, so the band above the panes does not change height."""
    import textwrap

    chars = max(8, int(pixels / HEADER_CHAR_PIXELS))
    labels = [f"frame {f} of 0-{frames - 1}" for f in range(frames)]
    if not header:
        return [[label] for label in labels]
    if len(f"{labels[-1]}   ·   {header}") <= chars:
        return [[f"{label}   ·   {header}"] for label in labels]
    wrapped: list[str] = []
    for part in (p.strip() for p in header.split("·")):
        if not part:
            continue
        if wrapped and len(f"{wrapped[-1]}  ·  {part}") <= chars:
            wrapped[-1] = f"{wrapped[-1]}  ·  {part}"
        else:
            wrapped += textwrap.wrap(part, chars, break_on_hyphens=False) or [part]
    return [[label, *wrapped] for label in labels]


def render_animation_frames(
    panes: list[AnimationPane],
    levels: tuple[float, float],
    header: str = "",
    min_pixels: int = MIN_PANE_PIXELS,
) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: per frame a header (``frame t of 0-(T-1)`` then ``header``,
    wrapped by :func:`animation_header_lines` where one line is too narrow)
    and the panes side by side, each windowed to ``levels``, enlarged by :func:`pane_scale` and
    titled (title, then its caption of that frame). H and W are even (H.264 yuv420p needs it).
    The text is drawn by matplotlib's Agg canvas, like the figures."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panes:
        raise MriViewerError("nothing to animate: no panes")
    t, h = np.shape(panes[0].series)[:2]
    for i, pane in enumerate(panes):
        if np.ndim(pane.series) != 3 or np.shape(pane.series)[:2] != (t, h):
            raise MriViewerError(
                f"pane {i} ({pane.title}) has shape {np.shape(pane.series)}, expected ({t}, {h}, w)"
            )
        if pane.captions is not None and len(pane.captions) != t:
            raise MriViewerError(f"pane {i} ({pane.title}) has {len(pane.captions)} captions")
    k = pane_scale(h, max(np.shape(p.series)[2] for p in panes), min_pixels)
    widths = [np.shape(p.series)[2] * k for p in panes]
    lines = 2 if any(p.captions is not None for p in panes) else 1
    width = 2 * ANIMATION_MARGIN + sum(widths) + ANIMATION_GAP * (len(panes) - 1)
    header_lines = animation_header_lines(header, t, width - 2 * ANIMATION_MARGIN)
    band = ANIMATION_HEADER + (len(header_lines[0]) - 1) * ANIMATION_LINE
    top = ANIMATION_MARGIN + band + lines * ANIMATION_LINE
    height = top + h * k + ANIMATION_MARGIN
    width, height = width + width % 2, height + height % 2
    lefts = [ANIMATION_MARGIN + sum(widths[:i]) + ANIMATION_GAP * i for i in range(len(panes))]
    windowed = [_window_uint8(p.series, levels) for p in panes]

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    canvas_image = np.full((height, width), ANIMATION_BACKGROUND, dtype=np.uint8)
    shown = fig.figimage(canvas_image, cmap="gray", vmin=0, vmax=255, origin="upper")

    def y(pixels_from_top: float) -> float:
        return 1.0 - pixels_from_top / height

    heads = [
        fig.text(
            ANIMATION_MARGIN / width,
            y(ANIMATION_MARGIN + ANIMATION_HEADER / 2 + i * ANIMATION_LINE),
            "",
            color="white",
            fontsize=13,
            ha="left",
            va="center",
        )
        for i in range(len(header_lines[0]))
    ]
    captions = []
    for left, pw, pane in zip(lefts, widths, panes, strict=True):
        cx = (left + pw / 2) / width
        fig.text(
            cx,
            y(ANIMATION_MARGIN + band + ANIMATION_LINE / 2),
            _fit(pane.title, pw, 8.5),
            color="white",
            fontsize=12,
            ha="center",
            va="center",
            fontweight="bold",
        )
        captions.append(
            None
            if pane.captions is None
            else fig.text(
                cx,
                y(ANIMATION_MARGIN + band + 1.5 * ANIMATION_LINE),
                "",
                color="#ffd75e",
                fontsize=11,
                ha="center",
                va="center",
            )
        )
    out = np.zeros((t, height, width, 3), dtype=np.uint8)
    for f in range(t):
        for left, win in zip(lefts, windowed, strict=True):
            block = np.kron(win[f], np.ones((k, k), dtype=np.uint8))
            canvas_image[top : top + block.shape[0], left : left + block.shape[1]] = block
        shown.set_data(canvas_image)
        for head, line in zip(heads, header_lines[f], strict=True):
            head.set_text(_fit(line, width - 2 * ANIMATION_MARGIN, HEADER_CHAR_PIXELS))
        for text, pane, pw in zip(captions, panes, widths, strict=True):
            if text is not None:
                text.set_text(_fit(pane.captions[f], pw, 7.5))
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        hh, ww = min(height, rgba.shape[0]), min(width, rgba.shape[1])
        out[f, :hh, :ww] = rgba[:hh, :ww, :3]
    return out


def write_cine_animation(
    path: str | Path,
    panes: list[AnimationPane],
    levels: tuple[float, float],
    fps: float = 8.0,
    sidecar: dict[str, Any] | None = None,
    header: str = "",
) -> Path:
    """Write the frames of :func:`render_animation_frames` as an animated GIF (looping) or an
    MP4 (H.264, yuv420p; needs imageio-ffmpeg), chosen by the suffix of ``path``, at ``fps``
    frames per second, atomically; ``sidecar`` goes to ``<path>.json``. Raises MriViewerError."""
    import imageio.v3 as iio

    from mriviewer.core.files import atomic_write_path, atomic_write_text

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ANIMATION_FORMATS:
        raise MriViewerError("the animation export needs a .gif or .mp4 file name", path)
    fps = max(float(fps), 0.1)
    if fmt == "mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError as exc:
            raise MriViewerError(
                "MP4 export needs the imageio-ffmpeg package (pip install imageio-ffmpeg)", path
            ) from exc
    frames = render_animation_frames(panes, levels, header)
    try:
        with atomic_write_path(path) as tmp:
            if fmt == "gif":
                iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
            else:
                # the temporary name ends in .tmp: tell ffmpeg the container
                iio.imwrite(
                    tmp,
                    frames,
                    extension=".mp4",
                    plugin="FFMPEG",
                    fps=fps,
                    codec="libx264",
                    pixelformat="yuv420p",
                    macro_block_size=1,
                    quality=8,
                    output_params=["-f", "mp4"],
                )
    except (OSError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MriViewerError(f"cannot write the animation: {first}", path) from exc
    if sidecar is not None:
        atomic_write_text(path.with_name(path.name + ".json"), json.dumps(sidecar, indent=2))
    return path
