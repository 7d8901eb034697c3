"""Run several reconstruction methods on one case and yield per-iteration results.

This is what the CLI (``recon``, ``eval``) and the GUI worker both call.

- :func:`prepare_problem`: k-space slice + mask -> normalised, masked :class:`ReconProblem` with
  coil maps (estimated from the sampled calibration region) and the reference.
- :func:`get_method`: method name (``zero-filled``, ``zero-filled-rss``, ``cg-sense``,
  ``l1-wavelet``, ``grappa``, a plugin's name, ``model:NAME_OR_PATH``) -> method object with
  ``iterate``; plugins (entry-point group ``mriviewer.methods``) are loaded on first use.
- :func:`to_original_units` / :func:`evaluate_image`: final images and metrics in original units,
  centre-cropped to the reconstruction matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mriviewer.core.errors import ReconError
from mriviewer.core.images import center_crop
from mriviewer.core.io.base import KSpaceVolume
from mriviewer.core.metrics import all_metrics
from mriviewer.core.physics.coils import (
    MIN_ESPIRIT_SQUARE,
    RECT_CALIB_LONG,
    auto_calibration,
    estimate_coil_maps,
    square_kernel,
)
from mriviewer.core.physics.fft import ifft2c_np, rss
from mriviewer.core.physics.masks import SamplingMask
from mriviewer.core.recon.base import IterationResult, ReconMethod, ReconProblem

MethodFactory = Callable[..., ReconMethod]
#: fewest fully sampled central lines (narrow side of the ACS) each coil-map estimator is run
#: on: ESPIRiT / JSENSE need kernels of at least 2 x 2 shifted within the region (below 4 lines
#: CG-SENSE was no better than zero-filled with any estimator on the bughunt 08 case and the
#: demo); low-resolution maps need a centre to window (3 lines)
MIN_CALIB_LINES = {"espirit": 4, "jsense": 4, "lowres": 3}
METHODS: dict[str, MethodFactory] = {}


def register_method(name: str, factory: MethodFactory) -> None:
    """Make ``name`` available to :func:`get_method` (factory takes keyword settings)."""
    METHODS[name] = factory


_PLUGINS: list[Any] | None = None


def load_plugins() -> list[Any]:
    """Register the methods of installed plugins (entry-point group ``mriviewer.methods``,
    :mod:`mriviewer.core.plugins`) once per process; returns every plugin's
    :class:`~mriviewer.core.plugins.PluginRecord` (failed ones carry ``error`` and are skipped)."""
    global _PLUGINS
    if _PLUGINS is None:
        from mriviewer.core.plugins import load_entry_points

        _PLUGINS = []  # set first: a plugin that imports this module must not load them again
        _PLUGINS.extend(load_entry_points(register_method, reserved=set(METHODS)))
    return _PLUGINS


def plugin_failures() -> list[Any]:
    """The plugins :func:`load_plugins` skipped (name, package, reason in ``error``)."""
    return [record for record in load_plugins() if record.error]


def classical_methods() -> list[str]:
    """Names of the registered methods (built-in, then plugins), in registration order."""
    load_plugins()
    return list(METHODS)


def get_method(name: str, **settings: Any) -> ReconMethod:
    """Build a method from its name; ``model:X`` loads a bundled or saved model."""
    if name.startswith("model:"):
        from mriviewer.core.recon.model_method import load_model_method

        return load_model_method(name[len("model:") :], **settings)
    load_plugins()
    if name not in METHODS:
        failed = [r for r in plugin_failures() if r.name == name]
        if failed:
            raise ReconError(failed[0].describe())
        known = ", ".join([*METHODS, "model:NAME", "model:PATH"])
        raise ReconError(f"unknown method {name!r}; known methods: {known}")
    method = METHODS[name](**settings)
    method.name = name
    return method


def kspace_scale(kspace: np.ndarray) -> float:
    """Normalisation: the 99th percentile of the zero-filled RSS magnitude (> 0)."""
    image = rss(ifft2c_np(kspace))
    scale = float(np.percentile(image, 99))
    if not np.isfinite(scale) or scale <= 0:
        scale = float(image.max())
    if not np.isfinite(scale) or scale <= 0:
        raise ReconError("k-space has no signal after masking (all zeros)")
    return scale


def prepare_problem(
    kspace: np.ndarray,
    mask: SamplingMask | np.ndarray,
    reference: np.ndarray | None = None,
    recon_matrix: tuple[int, int] | None = None,
    coil_method: str = "espirit",
    calib: int | tuple[int, int] | None = None,
    source: str = "",
    reference_kind: str = "rss",
    metrics_region: str = "all",
    fully_sampled: bool | None = None,
    virtual_coils: int | None = None,
    defer_maps: bool = False,
) -> ReconProblem:
    """Undersample ``(C, H, W)`` k-space with ``mask`` and get everything a method needs.

    kspace may be fully sampled (retrospective undersampling) or already undersampled (a
    scanner's accelerated scan): its own sampling (:func:`detect_sampling`: the points that
    hold data) is detected unless ``fully_sampled`` says which, and ``mask`` is applied on top
    of it (``info["acceleration"]`` is the achieved R of the result over the acquired band).

    Reference (what metrics are measured against), in original units, cropped to
    ``recon_matrix``:

    - fully sampled input: ``reference_kind`` ``rss`` (fastMRI; ``reference`` if given, e.g.
      the file's ``reconstruction_rss``) or ``sense`` (:mod:`mriviewer.core.reference`);
    - undersampled input: ``reference`` if the file carries one (RSS convention), else none
      (``problem.reference`` is None: no PSNR/SSIM/NMSE, only the ground-truth-free measures
      of :func:`iteration_metrics`). ``sense`` then raises ReconError.

    metrics_region: ``all`` or ``foreground`` (a mask of the reference, the same for every
    method). virtual_coils: compress the sampled k-space to at most V virtual coils (SVD over
    coils, :mod:`mriviewer.core.physics.coil_compression`) before coil maps and every method;
    the reference stays that of the original data. defer_maps: leave the (slow) coil-map
    estimation to :func:`estimate_maps`, so methods without maps can start first. Coil maps come from the fully sampled centre of the sampled data (ESPIRiT by
    default); a centre narrower than :data:`MIN_CALIB_LINES` lines (per estimator) leaves
    ``coil_maps`` None,
    and SENSE-based methods then fail with the reason (``problem.warnings`` holds it too).
    Raises ReconError for mismatched shapes, an empty mask, NaN/Inf or an unknown convention.
    """
    from mriviewer.core.physics.sampling import detect_sampling
    from mriviewer.core.reference import (
        check_metrics_region,
        check_reference_kind,
        foreground_mask,
        reference_image,
    )

    check_reference_kind(reference_kind)
    check_metrics_region(metrics_region)
    mask_arr = mask.array if isinstance(mask, SamplingMask) else np.asarray(mask, dtype=bool)
    if mask_arr.shape != kspace.shape[-2:]:
        raise ReconError(
            f"mask shape {mask_arr.shape} does not match k-space shape {kspace.shape[-2:]}"
        )
    if not mask_arr.any():
        raise ReconError("mask samples no k-space point")
    if not np.all(np.isfinite(kspace)):
        raise ReconError("k-space contains NaN or Inf")
    if min(kspace.shape[-2:]) < 2:
        raise ReconError(
            f"k-space of {kspace.shape[-2]} x {kspace.shape[-1]} has an image dimension of size "
            "1: not a 2-D slice (check the file's layout, e.g. --axes)"
        )
    recon_matrix = tuple(recon_matrix) if recon_matrix else tuple(kspace.shape[-2:])
    warnings: list[str] = []
    sampling = detect_sampling(kspace)
    if fully_sampled is None:
        fully_sampled = sampling.fully_sampled
    effective = mask_arr if fully_sampled else mask_arr & sampling.pattern
    if not effective.any():
        raise ReconError("the mask and the data's own sampling share no k-space point")
    under = (kspace * effective[None]).astype(np.complex64)
    compression = None
    if virtual_coils is not None and 0 < int(virtual_coils) < under.shape[0]:
        from mriviewer.core.physics.coil_compression import apply_compression, compression_matrix

        matrix = compression_matrix(under, int(virtual_coils))
        energy = float(
            np.linalg.norm(apply_compression(under, matrix)) ** 2 / np.linalg.norm(under) ** 2
        )
        compression = {"from": int(under.shape[0]), "to": int(virtual_coils), "energy": energy}
        under = apply_compression(under, matrix).astype(np.complex64)
    scale = kspace_scale(under)
    under = under / np.float32(scale)
    acs = SamplingMask(effective).acs_size()
    calibration_error = None
    needed = MIN_CALIB_LINES.get(coil_method, max(MIN_CALIB_LINES.values()))
    if under.shape[0] > 1 and min(acs) < needed:
        calibration_error = (
            f"the sampled data's fully sampled centre (calibration region) is {acs[0]} x "
            f"{acs[1]} points; coil-map estimation ({coil_method}) needs at least {needed} x "
            f"{needed}: SENSE-based methods are refused (raise --center-fraction or "
            "--calib, or use zero-filled-rss)"
        )
        warnings.append(calibration_error)
        maps = None
    else:
        if (
            coil_method == "espirit"
            and under.shape[0] > 1
            and max(acs) < RECT_CALIB_LONG  # a small 2-D centre, not a band of lines
            and min(acs) < MIN_ESPIRIT_SQUARE
        ):
            warnings.append(
                f"the calibration region ({acs[0]} x {acs[1]}) is too small for ESPIRiT "
                f"(at least {MIN_ESPIRIT_SQUARE} x {MIN_ESPIRIT_SQUARE} for a 2-D region): coil "
                "maps are low-resolution coil images of the sampled centre instead"
            )
            coil_method = "lowres"
            calib = tuple(acs)
        kernel = None
        if max(acs) < RECT_CALIB_LONG and coil_method == "espirit":
            # a small 2-D centre (not a band of lines): ESPIRiT on the largest square inside
            # it, with a kernel small enough for its calibration rows (square_kernel)
            calib = calib if calib is not None else min(acs)
            kernel = square_kernel(min(acs))
        if calib is None:
            calib = auto_calibration(acs)
        maps = None
        maps_request = {"method": coil_method, "calib": calib, "kernel": kernel}
    kind: str | None = reference_kind
    if fully_sampled:
        if reference is None or reference_kind == "sense":
            ref_source = f"{source}#full" if source else None
            reference = reference_image(kspace, reference_kind, recon_matrix, source=ref_source)
    elif reference is None:
        kind = None
    elif reference_kind == "sense":
        raise ReconError(
            "the SENSE reference needs fully sampled k-space, and this slice is undersampled "
            f"(R {sampling.acceleration:.1f}); use --reference rss with the file's own reference"
        )
    if not fully_sampled:
        warnings.append(
            f"k-space is undersampled (R {sampling.acceleration:.2f} of the full grid): "
            + ("metrics against the file's own reference" if kind else "no ground truth, no PSNR")
        )
        if reference is None and (reference_kind != "rss" or metrics_region != "all"):
            warnings.append("--reference / --metrics-region have no effect without a ground truth")
    foreground = None
    if reference is not None and metrics_region == "foreground":
        foreground = foreground_mask(reference)
    info = {
        "calib": calib,
        "coil_method": coil_method if calibration_error is None else None,
        "fully_sampled": bool(fully_sampled),
        "data_sampling": sampling.to_dict(),
        # R over the acquired band (zero-padded fastMRI columns are not "unsampled")
        "acceleration": float(
            effective[:, sampling.band[0] : sampling.band[1]].size
            / max(int(effective[:, sampling.band[0] : sampling.band[1]].sum()), 1)
        ),
        "acs": [int(acs[0]), int(acs[1])],
    }
    if calibration_error:
        info["calibration_error"] = calibration_error
    else:
        info["maps_request"] = maps_request
    if compression:
        info["virtual_coils"] = compression
    problem = ReconProblem(
        kspace=under,
        mask=effective,
        coil_maps=maps,
        reference=reference,
        scale=scale,
        recon_matrix=recon_matrix,
        source=source,
        info=info,
        reference_kind=kind if reference is not None else None,
        metrics_region=metrics_region,
        foreground=foreground,
        warnings=warnings,
    )
    if not defer_maps:
        estimate_maps(problem)
    return problem


def estimate_maps(problem: ReconProblem) -> ReconProblem:
    """Estimate the coil maps :func:`prepare_problem` decided on (``info["maps_request"]``:
    estimator, calibration region, kernel), once; a no-op when there are maps already or the
    calibration check refused them. Returns the problem."""
    request = problem.info.get("maps_request")
    refused = "calibration_error" in problem.info
    if problem.coil_maps is None and request is not None and not refused:
        problem.coil_maps = estimate_coil_maps(
            problem.kspace,
            method=request["method"],
            calib=request["calib"],
            source=None,
            kernel=request["kernel"],
        )
    return problem


def prepare_from_volume(
    volume: KSpaceVolume, mask: SamplingMask | np.ndarray, slice_index: int | None = None, **kw: Any
) -> ReconProblem:
    """:func:`prepare_problem` for one slice of an opened file (reference from the file if any)."""
    index = volume.slice_index if slice_index is None else volume.select_index(slice_index)
    kspace = volume.read_kspace(index)
    reference = volume.read_reference(index)
    return prepare_problem(
        kspace,
        mask,
        reference=reference,
        recon_matrix=reference.shape if reference is not None else volume.recon_matrix,
        source=f"{volume.path}#slice{index}",
        **kw,
    )


def to_original_units(problem: ReconProblem, image: np.ndarray) -> np.ndarray:
    """Complex ``(H, W)`` image in original units, centre-cropped to the recon matrix."""
    out = np.asarray(image) * problem.scale
    return center_crop(out, problem.recon_matrix or out.shape[-2:])


def evaluate_image(problem: ReconProblem, image: np.ndarray) -> dict[str, float]:
    """fastMRI metrics of a method's image against the problem's reference (magnitude), over
    the problem's metric region. Raises ReconError when there is no reference."""
    if problem.reference is None:
        raise ReconError("no reference image: metrics need a fully sampled reference")
    pred = np.abs(to_original_units(problem, image))
    ref = problem.reference
    if pred.shape != ref.shape:
        pred = center_crop(pred, ref.shape)
    return all_metrics(ref, pred, region=problem.foreground)


#: the measures shown without ground truth (keys of :func:`iteration_metrics`)
GT_FREE_METRICS = ("dc_residual", "rel_change")


def data_consistency(problem: ReconProblem, image: np.ndarray) -> float:
    """``||M F S x - y|| / ||y||`` of a normalised ``(H, W)`` image (no ground truth needed).

    Uses the problem's coil maps (NaN without them); x is the method's uncropped image."""
    if problem.coil_maps is None:
        return float("nan")
    from mriviewer.core.physics.fft import fft2c_np

    x = np.asarray(image, dtype=np.complex64)
    residual = fft2c_np(problem.coil_maps * x[None]) * problem.mask[None] - problem.kspace
    norm_y = float(np.linalg.norm(problem.kspace))
    return float(np.linalg.norm(residual) / norm_y) if norm_y > 0 else float("nan")


def relative_change(previous: np.ndarray | None, image: np.ndarray) -> float:
    """``||x_k - x_{k-1}|| / ||x_k||`` between two iterates (NaN for the first)."""
    if previous is None:
        return float("nan")
    norm = float(np.linalg.norm(image))
    return float(np.linalg.norm(np.asarray(image) - previous) / norm) if norm > 0 else float("nan")


def iteration_metrics(
    problem: ReconProblem,
    image: np.ndarray,
    previous: np.ndarray | None = None,
    coil_combined: bool = True,
) -> dict[str, float]:
    """What can be measured for one iterate: fastMRI's PSNR/SSIM/NMSE against the reference
    when there is one, else the ground-truth-free ``dc_residual`` (:func:`data_consistency`,
    only for a complex image combined with the coil maps: ``coil_combined``; an RSS image has
    no phase to push back through the maps) and ``rel_change`` (:func:`relative_change` from
    ``previous``; absent for the first iterate). Images are normalised ``(H, W)`` complex, as
    methods yield them."""
    if problem.reference is not None:
        return evaluate_image(problem, image)
    out = {"dc_residual": data_consistency(problem, image) if coil_combined else float("nan")}
    if previous is not None:
        out["rel_change"] = relative_change(previous, image)
    return {k: v for k, v in out.items() if np.isfinite(v)}


def needs_coil_maps(method: ReconMethod) -> bool:
    """False only for methods that combine coils without maps (``combine = "rss"``)."""
    flag = getattr(method, "needs_coil_maps", None)
    if flag is not None:
        return bool(flag)
    settings = getattr(method, "settings", dict)()
    return settings.get("combine") != "rss"


def run_method(
    method: ReconMethod,
    problem: ReconProblem,
    device: str = "cpu",
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[IterationResult]:
    """Iterate ``method`` on ``problem``; stops between iterations once ``should_stop()``.

    Raises ReconError (the calibration reason) for a SENSE-based method on a problem without
    coil maps."""
    if problem.coil_maps is None and needs_coil_maps(method):
        estimate_maps(problem)  # deferred by prepare_problem(defer_maps=True)
    if problem.coil_maps is None and needs_coil_maps(method):
        reason = problem.info.get("calibration_error", "no coil maps")
        raise ReconError(f"{getattr(method, 'name', 'method')} needs coil maps: {reason}")
    for result in method.iterate(problem, device=device):
        if should_stop is not None and should_stop():
            return
        yield result


@dataclass
class StreamRecord:
    """One iteration of one method, complete: what every consumer (app, recon, eval, reports,
    validation) shows or stores.

    image: ``(h, w)`` complex64 in the file's original units, centre-cropped to the recon
    matrix. metrics: :func:`iteration_metrics` (PSNR/SSIM/NMSE against the problem's reference,
    or the ground-truth-free ``dc_residual`` / ``rel_change``). elapsed: seconds since the
    method started. normalised: the method's own ``(H, W)`` image (normalised units, uncropped).
    """

    method: str
    iteration: int
    image: np.ndarray
    metrics: dict[str, float]
    elapsed: float
    final: bool
    normalised: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def stream(
    method: ReconMethod,
    problem: ReconProblem,
    device: str = "cpu",
    should_stop: Callable[[], bool] | None = None,
    metrics: bool = True,
) -> Iterator[StreamRecord]:
    """:func:`run_method` carried to the end: each iterate in original units, cropped, with its
    metrics (``metrics=False`` skips them, e.g. for timing). Raises what run_method raises."""
    previous = None
    name = getattr(method, "name", type(method).__name__)
    combined = needs_coil_maps(method)
    for result in run_method(method, problem, device, should_stop=should_stop):
        measures = iteration_metrics(problem, result.image, previous, combined) if metrics else {}
        previous = result.image
        yield StreamRecord(
            method=name,
            iteration=int(result.iteration),
            image=np.asarray(to_original_units(problem, result.image), dtype=np.complex64),
            metrics=measures,
            elapsed=float(result.elapsed),
            final=bool(result.final),
            normalised=result.image,
            extra=dict(result.extra),
        )


def scalar_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe scalars (int, float, str) of an iteration's ``extra`` (what a method reports
    besides its image, e.g. GRAPPA's ``kernel`` and calibration block)."""
    return {k: v for k, v in extra.items() if isinstance(v, (int, float, str))}


def resolved_settings(settings: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A method's ``settings()`` plus, under ``"resolved"``, what its final result reported
    (:func:`scalar_extra`), so that a recorded ``"auto"`` setting also says what it became."""
    resolved = scalar_extra(extra)
    return {**settings, "resolved": resolved} if resolved else dict(settings)


def final_record(
    method: ReconMethod, problem: ReconProblem, device: str = "cpu", metrics: bool = True
) -> StreamRecord:
    """The last :class:`StreamRecord` of ``method`` on ``problem`` (its metrics computed only
    for that iterate, plus the change from the one before). Raises ReconError if none."""
    last = previous = None
    for result in run_method(method, problem, device):
        previous, last = (None if last is None else last.image), result
    if last is None:
        raise ReconError(f"{getattr(method, 'name', 'method')} produced no image")
    return StreamRecord(
        method=getattr(method, "name", type(method).__name__),
        iteration=int(last.iteration),
        image=np.asarray(to_original_units(problem, last.image), dtype=np.complex64),
        metrics=(
            iteration_metrics(problem, last.image, previous, needs_coil_maps(method))
            if metrics
            else {}
        ),
        elapsed=float(last.elapsed),
        final=bool(last.final),
        normalised=last.image,
        extra=dict(last.extra),
    )


def _register_builtin() -> None:
    from mriviewer.core.recon.zero_filled import ZeroFilled

    register_method("zero-filled", lambda **kw: ZeroFilled(combine="sense", **kw))
    register_method("zero-filled-rss", lambda **kw: ZeroFilled(combine="rss", **kw))
    from mriviewer.core import recon

    recon.register_classical(register_method)


_register_builtin()
