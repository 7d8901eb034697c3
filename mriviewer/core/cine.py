"""Cine (2-D + time) counterpart of :mod:`mriviewer.core.compare`: problem, methods, metrics.

- :func:`prepare_cine_problem`: ``(T, C, H, W)`` k-space + ``(T, H, W)`` k-t mask
  -> normalised, masked :class:`~mriviewer.core.recon.cine.CineProblem` with coil maps from the
  time-averaged data (every frame's samples averaged per k-space point: the union of the frames'
  masks; its fully sampled centre is the calibration region, ESPIRiT by default) and the
  reference: RSS per frame of the fully sampled series (the file's ``reconstruction_rss`` when
  given) or ``sense`` (:func:`mriviewer.core.reference.reference_image` per frame).
  Already undersampled k-space (a scanner's accelerated cine, a file's ``mask``): its own k-t
  sampling (:func:`detect_kt_sampling`, :func:`~mriviewer.core.physics.sampling.detect_sampling`
  per frame) bounds the mask, and without the file's own reference there is no ground truth:
  no PSNR/SSIM/NMSE, the ground-truth-free ``dc_residual`` / ``rel_change`` instead
  (:func:`cine_gt_free_metrics`), as for a 2-D undersampled slice.
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
    "KtSampling",
    "cine_gt_free_metrics",
    "cine_metrics",
    "detect_kt_sampling",
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


@dataclass
class KtSampling:
    """The k-t sampling of a cine slice's own data (what :func:`detect_kt_sampling` found).

    pattern: ``(T, H, W)`` bool. fully_sampled: every frame is (and no file mask leaves points
    out). acceleration_per_frame: grid points / sampled points of each frame; acceleration:
    the same over the series. source: ``"file mask"`` or ``"detected"``."""

    pattern: np.ndarray = field(repr=False)
    fully_sampled: bool
    acceleration_per_frame: list[float]
    acceleration: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "fully_sampled": self.fully_sampled,
            "acceleration": self.acceleration,
            "acceleration_per_frame": list(self.acceleration_per_frame),
            "source": self.source,
        }

    def describe(self) -> str:
        """``"R 4.00 overall, per frame 3.9-4.1"`` (or ``"R 4.00 in each of the 12 frames"``)."""
        per = self.acceleration_per_frame
        if max(per) - min(per) < 1e-6:
            return f"R {self.acceleration:.2f} in each of the {len(per)} frames"
        return f"R {self.acceleration:.2f} overall, per frame {min(per):.2f}-{max(per):.2f}"


def detect_kt_sampling(kspace: np.ndarray, file_mask: np.ndarray | None = None) -> KtSampling:
    """The data's own k-t sampling of ``(T, C, H, W)`` k-space: the file's ``(T, H, W)`` mask
    when it has one (points outside it are not sampled), else
    :func:`~mriviewer.core.physics.sampling.detect_sampling` frame by frame (zeros, or a
    noise-only floor, where nothing was measured). Raises ReconError for a mismatched mask."""
    from mriviewer.core.physics.sampling import detect_sampling

    kspace = np.asarray(kspace)
    t, _, h, w = kspace.shape
    if file_mask is not None:
        pattern = np.asarray(file_mask, dtype=bool)
        if pattern.shape != (t, h, w):
            raise ReconError(f"the file's k-t mask {pattern.shape} does not match ({t}, {h}, {w})")
        fully = bool(pattern.all())
        source = "file mask"
    else:
        infos = [detect_sampling(frame) for frame in kspace]
        pattern = np.stack([i.pattern for i in infos])
        fully = all(i.fully_sampled for i in infos)
        source = "detected"
    per = [float(f.size / max(int(f.sum()), 1)) for f in pattern]
    overall = float(pattern.size / max(int(pattern.sum()), 1))
    return KtSampling(pattern, fully, per, overall, source)


def prepare_cine_problem(
    kspace: np.ndarray,
    mask: np.ndarray,
    reference: np.ndarray | None = None,
    recon_matrix: tuple[int, int] | None = None,
    coil_method: str = "espirit",
    reference_kind: str = "rss",
    source: str = "",
    fully_sampled: bool | None = None,
    sampling: KtSampling | None = None,
    virtual_coils: int | None = None,
    metrics_region: str = "all",
) -> CineProblem:
    """Undersample ``(T, C, H, W)`` k-space with the ``(T, H, W)`` mask.

    virtual_coils: compress the sampled k-space to at most V virtual coils with one SVD over
    the coils of every frame's samples (:mod:`mriviewer.core.physics.coil_compression`), before
    the coil maps; the reference stays that of the physical coils; ``info["virtual_coils"]``
    records ``{"from", "to", "energy"}``.

    metrics_region: ``all``, or ``foreground``: metrics over each reference frame's foreground
    (:func:`mriviewer.core.reference.foreground_mask`, per frame; ``problem.foreground``).

    The data's own k-t sampling (``sampling``, else :func:`detect_kt_sampling`) says whether
    the k-space is fully sampled unless ``fully_sampled`` does; undersampled data keep only the
    mask's points they hold, and their reference is ``reference`` (the file's own, RSS
    convention) or none: ``problem.reference`` None, no ground truth (``sense`` raises).
    Raises ReconError for mismatched shapes, an empty frame, NaN/Inf or an unknown reference."""
    from mriviewer.core.compare import MIN_CALIB_LINES
    from mriviewer.core.physics.coils import auto_calibration, estimate_coil_maps
    from mriviewer.core.physics.fft import ifft2c_np, rss
    from mriviewer.core.physics.kt_masks import kt_summary
    from mriviewer.core.physics.masks import fully_sampled_center
    from mriviewer.core.reference import (
        check_metrics_region,
        check_reference_kind,
        foreground_mask,
        reference_image,
    )

    check_reference_kind(reference_kind)
    check_metrics_region(metrics_region)
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
    if sampling is None:
        sampling = detect_kt_sampling(kspace)
    if fully_sampled is None:
        fully_sampled = sampling.fully_sampled
    if not fully_sampled:
        mask = mask & sampling.pattern
        empty = np.flatnonzero(~mask.reshape(t, -1).any(axis=1))
        if empty.size:
            raise ReconError(
                f"the k-t mask and the data's own sampling share no point in frame {empty[0]}"
            )
    recon_matrix = tuple(recon_matrix) if recon_matrix else (h, w)
    under = (kspace * mask[:, None]).astype(np.complex64)
    compression = matrix = None
    if virtual_coils is not None and 0 < int(virtual_coils) < c:
        from mriviewer.core.physics.coil_compression import apply_compression, compression_matrix

        coils_first = np.moveaxis(under, 1, 0).reshape(c, t * h, w)  # every frame's samples
        matrix = compression_matrix(coils_first, int(virtual_coils))
        compressed = apply_compression(under, matrix, axis=1)
        energy = float(np.linalg.norm(compressed) ** 2 / np.linalg.norm(under) ** 2)
        compression = {"from": int(c), "to": int(virtual_coils), "energy": energy}
        under = np.ascontiguousarray(compressed, dtype=np.complex64)
        c = under.shape[1]
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
    calibration = f"time-averaged k-space (union of the frames' masks), fully sampled centre {acs[0]} x {acs[1]}"
    shared = fully_sampled_center(mask.all(axis=0))
    if min(shared) >= needed and acs[0] * acs[1] > 2 * shared[0] * shared[1]:
        # Most of the union's centre was sampled in a few frames each: its time average mixes
        # motion states, and ESPIRiT on it gave maps with which CG-SENSE fell 4 dB below
        # zero-filled (demo-cine, random R 4). Calibrate on the band every frame shares.
        warnings.append(
            f"coil maps calibrated on the {shared[0]} x {shared[1]} centre sampled in every "
            f"frame, not the {acs[0]} x {acs[1]} union of the frames' centres (columns sampled "
            "in few frames mix motion states)"
        )
        calibration = (
            f"time-averaged k-space, calibrated on the {shared[0]} x {shared[1]} centre shared by "
            f"every frame (the union's {acs[0]} x {acs[1]} centre mixes frames)"
        )
        acs = shared
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
    kind: str | None = reference_kind
    if fully_sampled:
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
    elif reference_kind == "sense":
        raise ReconError(
            "the SENSE reference needs fully sampled k-space, and this cine slice is "
            f"undersampled ({sampling.describe()}); use --reference rss"
        )
    elif reference is None:
        kind = None
    if not fully_sampled:
        warnings.append(
            f"cine k-space is undersampled ({sampling.describe()}, {sampling.source}): "
            + ("metrics against the file's own reference" if kind else "no ground truth, no PSNR")
        )
    foreground = None
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float32)
        if metrics_region == "foreground":
            foreground = np.stack([foreground_mask(frame) for frame in reference])
    elif metrics_region != "all":
        warnings.append("--metrics-region has no effect without a ground truth")
    info = {
        "frames": int(t),
        "fully_sampled": bool(fully_sampled),
        "data_sampling": sampling.to_dict(),
        "mask": kt_summary(mask),
        "acceleration": float(mask.size / mask.sum()),
        "calib": calib if calib is None or isinstance(calib, int) else list(calib),
        "calibration": calibration,
        "coil_method": coil_method if maps is not None else None,
    }
    if compression is not None:
        info["virtual_coils"] = compression
    return CineProblem(
        kspace=under,
        mask=mask,
        coil_maps=maps,
        reference=reference,
        scale=scale,
        recon_matrix=recon_matrix,
        source=source,
        info=info,
        reference_kind=kind if reference is not None else None,
        warnings=warnings,
        foreground=foreground,
        compression=matrix,
    )


def to_original_units(problem: CineProblem, image: np.ndarray) -> np.ndarray:
    """``(T, h, w)`` complex in original units, centre-cropped to the recon matrix."""
    return center_crop(np.asarray(image) * problem.scale, problem.recon_matrix or image.shape[-2:])


def cine_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    region: np.ndarray | None = None,
    ssim_per_frame: bool = False,
) -> dict[str, Any]:
    """fastMRI per-volume PSNR/SSIM/NMSE of ``(T, h, w)`` magnitudes (frames stacked as slices;
    data_range = the series' reference maximum) and ``psnr_per_frame`` (same data_range), plus
    ``ssim_per_frame`` when asked. region: ``(T, h, w)`` bool, the pixels the metrics cover
    (``problem.foreground``; :func:`mriviewer.core.metrics.region_metrics`), or None for all."""
    from mriviewer.core.metrics import all_metrics, frame_psnr_ssim, psnr

    ref = np.abs(np.asarray(reference, dtype=np.float64))
    pred = np.abs(np.asarray(prediction, dtype=np.float64))
    out: dict[str, Any] = dict(all_metrics(ref, pred, region=region))
    dr = float(ref.max())
    if region is None and not ssim_per_frame:
        out["psnr_per_frame"] = [psnr(r, p, dr) for r, p in zip(ref, pred, strict=True)]
        return out
    regions = region if region is not None else [None] * len(ref)
    pairs = [frame_psnr_ssim(r, p, dr, g) for r, p, g in zip(ref, pred, regions, strict=True)]
    out["psnr_per_frame"] = [p for p, _ in pairs]
    if ssim_per_frame:
        out["ssim_per_frame"] = [s for _, s in pairs]
    return out


def _residual_terms(problem: CineProblem, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame ``||M_t F S x_t - y_t||^2`` and ``||y_t||^2`` of a normalised ``(T, H, W)``
    image (needs coil maps)."""
    from mriviewer.core.physics.fft import fft2c_np

    x = np.asarray(image, dtype=np.complex64)
    predicted = fft2c_np(problem.coil_maps[None] * x[:, None]) * problem.mask[:, None]
    frames = predicted.shape[0]
    residual = (np.abs(predicted - problem.kspace) ** 2).reshape(frames, -1).sum(axis=1)
    data = (np.abs(problem.kspace) ** 2).reshape(frames, -1).sum(axis=1)
    return residual.astype(np.float64), data.astype(np.float64)


def _ratio(residual_sq: float, data_sq: float) -> float:
    return float(np.sqrt(residual_sq / data_sq)) if data_sq > 0 else float("nan")


def cine_data_consistency(problem: CineProblem, image: np.ndarray) -> float:
    """``||M F S x - y|| / ||y||`` over the series of a normalised ``(T, H, W)`` image (the
    method's own, uncropped); NaN without coil maps."""
    if problem.coil_maps is None:
        return float("nan")
    residual, data = _residual_terms(problem, image)
    return _ratio(float(residual.sum()), float(data.sum()))


def cine_gt_free_metrics(
    problem: CineProblem,
    image: np.ndarray,
    previous: np.ndarray | None = None,
    per_frame: bool = False,
) -> dict[str, Any]:
    """What is measured without ground truth (as :func:`mriviewer.core.compare.iteration_metrics`
    for 2-D): ``dc_residual`` (:func:`cine_data_consistency`) and ``rel_change`` from
    ``previous`` (absent for the first iterate); NaN values are left out. ``per_frame`` adds
    ``dc_residual_per_frame`` (``||M_t F S x_t - y_t|| / ||y_t||`` of each frame, from the same
    forward model; empty without coil maps)."""
    from mriviewer.core.compare import relative_change

    out: dict[str, Any] = {"dc_residual_per_frame": []} if per_frame else {}
    if problem.coil_maps is not None:
        residual, data = _residual_terms(problem, image)
        out["dc_residual"] = _ratio(float(residual.sum()), float(data.sum()))
        if per_frame:
            out["dc_residual_per_frame"] = [
                _ratio(float(r), float(d)) for r, d in zip(residual, data, strict=True)
            ]
    if previous is not None:
        out["rel_change"] = relative_change(previous, image)
    return {k: v for k, v in out.items() if isinstance(v, list) or np.isfinite(v)}


@dataclass
class CineRecord:
    """One iterate of one method on a cine problem: ``image`` ``(T, h, w)`` complex64 in original
    units (cropped); ``metrics`` from :func:`cine_metrics` with a reference, else
    :func:`cine_gt_free_metrics` (empty when not asked for); ``normalised`` the method's own
    ``(T, H, W)`` image (normalised units, uncropped)."""

    method: str
    iteration: int
    image: np.ndarray
    metrics: dict[str, Any]
    elapsed: float
    final: bool
    extra: dict[str, Any] = field(default_factory=dict)
    normalised: np.ndarray | None = field(default=None, repr=False)


def stream_cine(
    method: Any, problem: CineProblem, device: str = "cpu", metrics: bool = True
) -> Iterator[CineRecord]:
    """Each iterate of ``method`` on ``problem``, in original units, with its metrics (against
    the reference, or ground-truth-free without one)."""
    name = getattr(method, "name", type(method).__name__)
    previous = None
    for result in method.iterate(problem, device=device):
        image = np.asarray(to_original_units(problem, result.image), dtype=np.complex64)
        measures: dict[str, Any] = {}
        if metrics and problem.reference is not None:
            pred = center_crop(np.abs(image), problem.reference.shape[-2:])
            measures = cine_metrics(problem.reference, pred, region=problem.foreground)
        elif metrics:
            measures = cine_gt_free_metrics(problem, result.image, previous)
        previous = result.image
        yield CineRecord(
            name,
            int(result.iteration),
            image,
            measures,
            float(result.elapsed),
            bool(result.final),
            extra=dict(result.extra),
            normalised=result.image,
        )


def final_cine_record(method: Any, problem: CineProblem, device: str = "cpu") -> CineRecord:
    """The last iterate (no metrics computed on the way)."""
    last = None
    for record in stream_cine(method, problem, device, metrics=False):
        last = record
    if last is None:
        raise ReconError(f"{getattr(method, 'name', 'method')} produced no image")
    return last
