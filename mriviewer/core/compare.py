"""Run several reconstruction methods on one case and yield per-iteration results.

This is what the CLI (``recon``, ``eval``) and the GUI worker both call.

- :func:`prepare_problem`: k-space slice + mask -> normalised, masked :class:`ReconProblem` with
  coil maps (estimated from the sampled calibration region) and the reference.
- :func:`get_method`: method name (``zero-filled``, ``zero-filled-rss``, ``cg-sense``,
  ``l1-wavelet``, ``model:NAME_OR_PATH``) -> method object with ``iterate``.
- :func:`to_original_units` / :func:`evaluate_image`: final images and metrics in original units,
  centre-cropped to the reconstruction matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mriviewer.core.errors import ReconError
from mriviewer.core.io.base import KSpaceVolume
from mriviewer.core.io.fastmri import center_crop
from mriviewer.core.metrics import all_metrics
from mriviewer.core.physics.coils import auto_calibration, estimate_coil_maps
from mriviewer.core.physics.fft import ifft2c_np, rss
from mriviewer.core.physics.masks import SamplingMask
from mriviewer.core.recon.base import IterationResult, ReconMethod, ReconProblem

MethodFactory = Callable[..., ReconMethod]
METHODS: dict[str, MethodFactory] = {}


def register_method(name: str, factory: MethodFactory) -> None:
    """Make ``name`` available to :func:`get_method` (factory takes keyword settings)."""
    METHODS[name] = factory


def classical_methods() -> list[str]:
    """Names of the registered classical methods, in registration order."""
    return list(METHODS)


def get_method(name: str, **settings: Any) -> ReconMethod:
    """Build a method from its name; ``model:X`` loads a bundled or saved model."""
    if name.startswith("model:"):
        from mriviewer.core.checkpoints import load_model_method

        return load_model_method(name[len("model:") :], **settings)
    if name not in METHODS:
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
    calib: int | None = None,
    source: str = "",
) -> ReconProblem:
    """Undersample ``(C, H, W)`` k-space with ``mask`` and get everything a method needs.

    kspace may be fully sampled (retrospective) or already undersampled (zeros are kept).
    The reference defaults to the RSS of the fully sampled input cropped to ``recon_matrix``
    (only meaningful when the input is fully sampled; pass ``reference`` otherwise).
    Coil maps come from the sampled data's fully sampled centre (ESPIRiT by default).
    """
    mask_arr = mask.array if isinstance(mask, SamplingMask) else np.asarray(mask, dtype=bool)
    if mask_arr.shape != kspace.shape[-2:]:
        raise ReconError(
            f"mask shape {mask_arr.shape} does not match k-space shape {kspace.shape[-2:]}"
        )
    if not mask_arr.any():
        raise ReconError("mask samples no k-space point")
    if not np.all(np.isfinite(kspace)):
        raise ReconError("k-space contains NaN or Inf")
    recon_matrix = tuple(recon_matrix) if recon_matrix else tuple(kspace.shape[-2:])
    under = (kspace * mask_arr[None]).astype(np.complex64)
    scale = kspace_scale(under)
    under = under / np.float32(scale)
    if calib is None:
        acs = (
            mask.acs_size() if isinstance(mask, SamplingMask) else SamplingMask(mask_arr).acs_size()
        )
        calib = auto_calibration(acs)
    maps = estimate_coil_maps(under, method=coil_method, calib=calib, source=None)
    if reference is None:
        reference = center_crop(rss(ifft2c_np(kspace)), recon_matrix).astype(np.float32)
    return ReconProblem(
        kspace=under,
        mask=mask_arr,
        coil_maps=maps,
        reference=reference,
        scale=scale,
        recon_matrix=recon_matrix,
        source=source,
        info={"calib": calib, "coil_method": coil_method},
    )


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
    """fastMRI metrics of a method's image against the problem's reference (magnitude)."""
    if problem.reference is None:
        raise ReconError("no reference image: metrics need a fully sampled reference")
    pred = np.abs(to_original_units(problem, image))
    ref = problem.reference
    if pred.shape != ref.shape:
        pred = center_crop(pred, ref.shape)
    return all_metrics(ref, pred)


def run_method(
    method: ReconMethod,
    problem: ReconProblem,
    device: str = "cpu",
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[IterationResult]:
    """Iterate ``method`` on ``problem``; stops between iterations once ``should_stop()``."""
    for result in method.iterate(problem, device=device):
        if should_stop is not None and should_stop():
            return
        yield result


def _register_builtin() -> None:
    from mriviewer.core.recon.zero_filled import ZeroFilled

    register_method("zero-filled", lambda **kw: ZeroFilled(combine="sense", **kw))
    register_method("zero-filled-rss", lambda **kw: ZeroFilled(combine="rss", **kw))
    from mriviewer.core import recon

    recon.register_classical(register_method)


_register_builtin()
