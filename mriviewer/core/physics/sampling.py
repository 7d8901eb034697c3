"""Which k-space points of a file hold data: the sampling pattern of an acquisition.

A scanner's accelerated scan (or a retrospectively undersampled file someone saved) stores zeros
(or a small noise-only floor) where nothing was measured. :func:`sampling_pattern` recovers the
``(H, W)`` pattern; :func:`detect_sampling` says whether the data are fully sampled, and gives
the achieved acceleration and the calibration (ACS) region of the data's own sampling.

Rules (documented, tested in ``tests/core/test_real_scans.py``):

- exact zeros in every coil mark a point as not sampled;
- a noise-only floor is recognised when the energy of the remaining points splits in two
  classes (Otsu's threshold on log10 energy) separated by a gap of at least
  :data:`FLOOR_GAP_DECADES` decades: per point, or per phase-encode line / readout row (1-D
  Cartesian sampling with a floor as high as the measurement noise still separates when whole
  lines are summed);
- the data are fully sampled when at least :data:`FULLY_SAMPLED_FRACTION` of the points inside
  the acquired band (:func:`mriviewer.core.physics.band.acquired_band`: all-zero edge columns
  of zero-padded fastMRI files are outside it) hold data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: gap (decades of energy) between the sampled class and a noise-only floor
FLOOR_GAP_DECADES = 1.0
from mriviewer.core.physics.band import FULLY_SAMPLED_FRACTION  # noqa: E402 - one rule for both


def _otsu_split(values: np.ndarray) -> tuple[float, float] | None:
    """Otsu threshold of 1-D ``values`` and the gap between the two classes (upper class's 0.5th
    percentile minus lower class's 99.5th percentile); None when all values are equal."""
    if values.size < 4 or float(values.max() - values.min()) <= 0:
        return None
    from skimage.filters import threshold_otsu

    t = float(threshold_otsu(values, nbins=256))
    lower, upper = values[values <= t], values[values > t]
    if lower.size == 0 or upper.size == 0:
        return None
    gap = float(np.percentile(upper, 0.5) - np.percentile(lower, 99.5))
    return t, gap


def _floor_split(energy: np.ndarray) -> np.ndarray | None:
    """Boolean "above the floor" for ``energy`` (> 0) values, or None when there is no floor."""
    logs = np.log10(energy)
    split = _otsu_split(logs.ravel())
    if split is None:
        return None
    t, gap = split
    if gap < FLOOR_GAP_DECADES:
        return None
    return logs > t


def sampling_pattern(kspace: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the k-space points of ``(C, H, W)`` (or ``(H, W)``) data that hold data.

    Exact zeros in every coil are not sampled; a noise-only floor (see the module docstring) is
    not sampled either. Fully sampled data give all True (except true zeros such as padding).
    """
    k = np.asarray(kspace)
    if k.ndim == 2:
        k = k[None]
    energy = (np.abs(k.astype(np.complex128, copy=False)) ** 2).sum(axis=0)
    nonzero = energy > 0
    if not nonzero.any():
        return nonzero
    # 1-D Cartesian patterns: whole lines (columns = phase encodes, or rows) above a floor
    for axis in (0, 1):
        lines = energy.sum(axis=axis)
        held = lines > 0
        if held.sum() >= 4:
            above = _floor_split(lines[held])
            if above is not None:
                keep = np.zeros_like(held)
                keep[np.flatnonzero(held)[above]] = True
                line_mask = keep[None, :] if axis == 0 else keep[:, None]
                return nonzero & np.broadcast_to(line_mask, energy.shape)
    # arbitrary (2-D) patterns: point by point
    values = energy[nonzero]
    above = _floor_split(values)
    if above is None:
        return nonzero
    out = np.zeros_like(nonzero)
    out[nonzero] = above
    return out


@dataclass
class SamplingInfo:
    """What :func:`detect_sampling` found.

    pattern: ``(H, W)`` bool. fully_sampled: the acquired band holds data everywhere (within
    :data:`FULLY_SAMPLED_FRACTION`). band: ``(first, stop)`` acquired columns. acceleration:
    grid points / sampled points (the achieved R of the data's own sampling). acs:
    ``(rows, cols)`` of the fully sampled centre. floor: a noise-only floor was found.
    """

    pattern: np.ndarray = field(repr=False)
    fully_sampled: bool
    band: tuple[int, int]
    acceleration: float
    acs: tuple[int, int]
    floor: bool

    def to_dict(self) -> dict:
        return {
            "fully_sampled": self.fully_sampled,
            "band": list(self.band),
            "acceleration": self.acceleration,
            "acs": list(self.acs),
            "noise_floor": self.floor,
        }


def detect_sampling(kspace: np.ndarray) -> SamplingInfo:
    """Sampling pattern of ``(C, H, W)`` k-space and what follows from it (see module doc)."""
    from mriviewer.core.physics.band import acquired_band
    from mriviewer.core.physics.masks import fully_sampled_center

    pattern = sampling_pattern(kspace)
    k = np.asarray(kspace)
    nonzero = (k.reshape(-1, *pattern.shape) != 0).any(axis=0)
    floor = bool((nonzero & ~pattern).any())
    first, stop = acquired_band(pattern).columns
    inside = pattern[:, first:stop]
    sampled = int(inside.sum())
    fraction = sampled / max(inside.size, 1)
    acceleration = pattern.size / sampled if sampled else float("inf")
    acs = fully_sampled_center(pattern) if sampled else (0, 0)
    return SamplingInfo(
        pattern=pattern,
        fully_sampled=bool(fraction >= FULLY_SAMPLED_FRACTION),
        band=(first, stop),
        acceleration=float(acceleration),
        acs=(int(acs[0]), int(acs[1])),
        floor=floor,
    )
