"""Cine (2-D + time) counterpart of :mod:`mriviewer.core.compare`: problem, methods, metrics.

- :func:`prepare_cine_problem`: fully sampled ``(T, C, H, W)`` k-space + ``(T, H, W)`` k-t mask
  -> normalised, masked :class:`~mriviewer.core.recon.cine.CineProblem` with coil maps from the
  time-averaged data (every frame's samples averaged per k-space point: the union of the frames'
  masks; its fully sampled centre is the calibration region, ESPIRiT by default) and the
  reference: RSS per frame of the fully sampled series (the file's ``reconstruction_rss`` when
  given) or ``sense`` (:func:`mriviewer.core.reference.reference_image` per frame).
- :func:`get_cine_method` (``zero-filled``, ``cg-sense``, ``kt-l1``, ``model:PATH``),
  :func:`stream_cine` (each iterate in original units, cropped, with its metrics),
  :func:`cine_metrics` (fastMRI per-volume metrics with the frames stacked as slices, and PSNR
  per frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mriviewer.core.errors import ReconError
from mriviewer.core.images import center_crop
from mriviewer.core.recon.cine import CINE_METHODS, CineProblem

__all__ = [
    "CINE_METHODS",
    "CineProblem",
    "cine_metrics",
    "get_cine_method",
    "prepare_cine_problem",
    "stream_cine",
]


def get_cine_method(name: str, **settings: Any):
    """A cine method by name (or ``model:PATH``, a trained model with frames as its batch);
    ReconError naming the cine methods for any other."""
    if name.startswith("model:"):
        from mriviewer.core.recon.cine import load_cine_model

        return load_cine_model(name, **settings)
    if name not in CINE_METHODS:
        raise ReconError(
            f"method {name!r} does not run on cine data; cine methods: {', '.join(CINE_METHODS)}"
        )
    return CINE_METHODS[name](**settings)


def prepare_cine_problem(
    kspace: np.ndarray,
    mask: np.ndarray,
    reference: np.ndarray | None = None,
    recon_matrix: tuple[int, int] | None = None,
    coil_method: str = "espirit",
    reference_kind: str = "rss",
    source: str = "",
) -> CineProblem:
    """Undersample fully sampled ``(T, C, H, W)`` k-space with the ``(T, H, W)`` mask.

    Raises ReconError for mismatched shapes, an empty frame, NaN/Inf or an unknown reference."""
    from mriviewer.core.compare import MIN_CALIB_LINES
    from mriviewer.core.physics.coils import auto_calibration, estimate_coil_maps
    from mriviewer.core.physics.fft import ifft2c_np, rss
    from mriviewer.core.physics.kt_masks import kt_summary
    from mriviewer.core.physics.masks import fully_sampled_center
    from mriviewer.core.reference import check_reference_kind, reference_image

    check_reference_kind(reference_kind)
    kspace = np.asarray(kspace)
    mask = np.asarray(mask, dtype=bool)
    if kspace.ndim != 4:
        raise ReconError(f"cine k-space must be (frames, coils, H, W), got {kspace.shape}")
    t, c, h, w = kspace.shape
    if mask.shape != (t, h, w):
        raise ReconError(f"k-t mask shape {mask.shape} does not match ({t}, {h}, {w})")
    if not mask.reshape(t, -1).any(axis=1).all():
        raise ReconError("the k-t mask samples no point in some frame")
    if not np.all(np.isfinite(kspace)):
        raise ReconError("k-space contains NaN or Inf")
    recon_matrix = tuple(recon_matrix) if recon_matrix else (h, w)
    under = (kspace * mask[:, None]).astype(np.complex64)
    image = np.stack([rss(ifft2c_np(frame)) for frame in under])
    scale = float(np.percentile(image, 99))
    if not np.isfinite(scale) or scale <= 0:
        raise ReconError("k-space has no signal after masking (all zeros)")
    under /= np.float32(scale)
    counts = mask.sum(axis=0)
    averaged = (under.sum(axis=0) / np.maximum(counts, 1)[None]).astype(np.complex64)
    union = mask.any(axis=0)
    acs = fully_sampled_center(union)
    warnings: list[str] = []
    needed = MIN_CALIB_LINES.get(coil_method, 4)
    maps = None
    calib = None
    if c > 1 and min(acs) < needed:
        warnings.append(
            f"the time-averaged data's fully sampled centre is {acs[0]} x {acs[1]}; coil-map "
            f"estimation ({coil_method}) needs {needed} x {needed}: SENSE-based methods are "
            "refused (raise --center-fraction)"
        )
    else:
        calib = auto_calibration(acs)
        maps = estimate_coil_maps(averaged, method=coil_method, calib=calib, source=None)
    if reference is None or reference_kind == "sense":
        reference = np.stack(
            [
                reference_image(
                    kspace[f],
                    reference_kind,
                    recon_matrix,
                    source=f"{source}#frame{f}#full" if source else None,
                )
                for f in range(t)
            ]
        )
    reference = np.asarray(reference, dtype=np.float32)
    info = {
        "frames": int(t),
        "mask": kt_summary(mask),
        "acceleration": float(mask.size / mask.sum()),
        "calib": calib if calib is None or isinstance(calib, int) else list(calib),
        "calibration": "time-averaged k-space (union of the frames' masks), fully sampled "
        f"centre {acs[0]} x {acs[1]}",
        "coil_method": coil_method if maps is not None else None,
    }
    return CineProblem(
        kspace=under,
        mask=mask,
        coil_maps=maps,
        reference=reference,
        scale=scale,
        recon_matrix=recon_matrix,
        source=source,
        info=info,
        reference_kind=reference_kind,
        warnings=warnings,
    )


def to_original_units(problem: CineProblem, image: np.ndarray) -> np.ndarray:
    """``(T, h, w)`` complex in original units, centre-cropped to the recon matrix."""
    return center_crop(np.asarray(image) * problem.scale, problem.recon_matrix or image.shape[-2:])


def cine_metrics(reference: np.ndarray, prediction: np.ndarray) -> dict[str, Any]:
    """fastMRI per-volume PSNR/SSIM/NMSE of ``(T, h, w)`` magnitudes (frames stacked as slices;
    data_range = the series' reference maximum) and ``psnr_per_frame`` (same data_range)."""
    from mriviewer.core.metrics import all_metrics, psnr

    ref = np.abs(np.asarray(reference, dtype=np.float64))
    pred = np.abs(np.asarray(prediction, dtype=np.float64))
    out: dict[str, Any] = dict(all_metrics(ref, pred))
    dr = float(ref.max())
    out["psnr_per_frame"] = [psnr(r, p, dr) for r, p in zip(ref, pred, strict=True)]
    return out


@dataclass
class CineRecord:
    """One iterate of one method on a cine problem: ``image`` ``(T, h, w)`` complex64 in original
    units (cropped); ``metrics`` from :func:`cine_metrics` (empty when not asked for)."""

    method: str
    iteration: int
    image: np.ndarray
    metrics: dict[str, Any]
    elapsed: float
    final: bool
    extra: dict[str, Any] = field(default_factory=dict)


def stream_cine(
    method: Any, problem: CineProblem, device: str = "cpu", metrics: bool = True
) -> Iterator[CineRecord]:
    """Each iterate of ``method`` on ``problem``, in original units, with its metrics."""
    name = getattr(method, "name", type(method).__name__)
    for result in method.iterate(problem, device=device):
        image = np.asarray(to_original_units(problem, result.image), dtype=np.complex64)
        measures: dict[str, Any] = {}
        if metrics and problem.reference is not None:
            pred = center_crop(np.abs(image), problem.reference.shape[-2:])
            measures = cine_metrics(problem.reference, pred)
        yield CineRecord(
            name, int(result.iteration), image, measures, float(result.elapsed), bool(result.final)
        )


def final_cine_record(method: Any, problem: CineProblem, device: str = "cpu") -> CineRecord:
    """The last iterate (no metrics computed on the way)."""
    last = None
    for record in stream_cine(method, problem, device, metrics=False):
        last = record
    if last is None:
        raise ReconError(f"{getattr(method, 'name', 'method')} produced no image")
    return last
