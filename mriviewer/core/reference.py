"""What a metric is measured against: the reference image, its convention and the metric region.

Two conventions (see ``../shared/design/SCIENCE.md``, "References and ground truth"):

- ``rss`` (fastMRI, Zbontar et al. 2018): ``sqrt(sum_c |F^-1 y_c|^2)`` of the fully sampled
  k-space. It keeps the background noise floor and the coil shading, so it favours RSS-combined
  outputs (zero-filled RSS) over SENSE-combined ones.
- ``sense`` (MoDL, GLEAM, PUN papers): ``|sum_c conj(S_c) F^-1 y_c|`` with coil maps ``S``
  estimated from the fully sampled k-space by :data:`SENSE_ESTIMATOR`. Its background is zero
  where the ESPIRiT eigenvalue crop removes it, as in the SENSE-based methods' outputs.

Metric regions: ``all`` (the whole reconstruction matrix, fastMRI's rule) or ``foreground``
(:func:`foreground_mask`: the reference thresholded at :data:`FOREGROUND_FRACTION` of its 99th
percentile, closed with a 3x3 structuring element and its holes filled), the same mask for every
method.
"""

from __future__ import annotations

import numpy as np

from mriviewer.core.errors import ReconError

REFERENCE_KINDS = ("rss", "sense")
METRIC_REGIONS = ("all", "foreground")
#: calibration square and crop of the coil maps behind the ``sense`` reference
SENSE_CALIB = 24
SENSE_CROP = 0.95
SENSE_ESTIMATOR = (
    f"ESPIRiT (sigpy EspiritCalib, {SENSE_CALIB}x{SENSE_CALIB} calibration, eigenvalue crop "
    f"{SENSE_CROP}) on the fully sampled k-space"
)
#: foreground threshold, as a fraction of the reference's 99th percentile
FOREGROUND_FRACTION = 0.1


def check_reference_kind(kind: str) -> str:
    """``kind`` if it is a known convention; raises ReconError otherwise."""
    if kind not in REFERENCE_KINDS:
        raise ReconError(f"unknown reference {kind!r}: use {' or '.join(REFERENCE_KINDS)}")
    return kind


def check_metrics_region(region: str) -> str:
    """``region`` if it is a known metric region; raises ReconError otherwise."""
    if region not in METRIC_REGIONS:
        raise ReconError(f"unknown metrics region {region!r}: use {' or '.join(METRIC_REGIONS)}")
    return region


def describe_reference(kind: str | None, region: str = "all") -> str:
    """One line naming the convention (for table headers, captions, sidecars)."""
    if kind is None:
        return "no reference (k-space not fully sampled): no PSNR/SSIM/NMSE"
    text = {
        "rss": "reference: RSS of the fully sampled data (fastMRI)",
        "sense": f"reference: SENSE combination of the fully sampled data, maps by {SENSE_ESTIMATOR}",
    }[check_reference_kind(kind)]
    if region == "foreground":
        text += "; metrics over the foreground mask"
    return text


def reference_image(
    kspace: np.ndarray,
    kind: str = "rss",
    recon_matrix: tuple[int, int] | None = None,
    source: str | None = None,
) -> np.ndarray:
    """``(h, w)`` float32 reference magnitude from fully sampled ``(C, H, W)`` k-space.

    kind: ``rss`` or ``sense`` (module docstring); the result is centre-cropped to
    ``recon_matrix`` (default: the k-space matrix), in the k-space's units.
    source: a stable identity for the coil-map cache (e.g. ``"file.h5#slice3#full"``).
    Raises ReconError for an unknown kind.
    """
    from mriviewer.core.images import center_crop
    from mriviewer.core.physics.fft import ifft2c_np, rss

    check_reference_kind(kind)
    k = np.asarray(kspace, dtype=np.complex64)
    coil_images = ifft2c_np(k)
    if kind == "rss" or k.shape[0] == 1:
        image = rss(coil_images)
    else:
        from mriviewer.core.physics.coils import estimate_coil_maps

        maps = estimate_coil_maps(
            k, method="espirit", calib=SENSE_CALIB, crop=SENSE_CROP, source=source
        )
        image = np.abs((np.conj(maps) * coil_images).sum(axis=0))
    matrix = tuple(recon_matrix) if recon_matrix else tuple(k.shape[-2:])
    return np.asarray(center_crop(image, matrix), dtype=np.float32)


def foreground_mask(reference: np.ndarray) -> np.ndarray:
    """``(h, w)`` bool foreground of a reference magnitude (rule in the module docstring)."""
    from scipy import ndimage

    ref = np.abs(np.asarray(reference, dtype=np.float64))
    level = float(np.percentile(ref, 99))
    if not np.isfinite(level) or level <= 0:
        return np.ones(ref.shape, dtype=bool)
    mask = ref > FOREGROUND_FRACTION * level
    mask = ndimage.binary_closing(mask, structure=np.ones((3, 3)), border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    if not mask.any():
        return np.ones(ref.shape, dtype=bool)
    return mask
