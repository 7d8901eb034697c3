"""k-t sampling masks for cine (2-D + time): 1-D Cartesian masks that change from frame to frame.

Every frame samples ``round(W * center_fraction)`` central phase-encode columns (the shared
calibration band, the same in every frame; fastMRI's centre rule) and other columns so that the
frame holds ``round(W / R)`` columns in all (R per frame meets the request up to rounding):

- ``random``: the other columns are drawn uniformly without replacement from the columns outside
  the band, with frame ``t``'s own generator (``stable_seed(seed, "frame", t)``), so frames
  differ and the set is reproducible;
- ``equispaced``: columns every ``s`` from an offset that moves by one column per frame (a
  sheared k-t lattice, as in k-t BLAST/SPARSE); ``s`` is fastMRI's adjusted spacing
  ``R (N_low - W) / (N_low R - W)`` so the band plus the lattice hold about ``W / R`` columns.

A mask is ``(T, H, W)`` bool (broadcast along the readout axis ``H``). :func:`kt_summary` gives
the achieved R per frame and overall and the size of the shared band. VISTA is not implemented.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mriviewer.core.errors import MaskError
from mriviewer.core.physics.masks import MaskSpec, fully_sampled_center, stable_seed

KT_KINDS = ("random", "equispaced")
#: the default R per frame of a k-t mask (the app, eval and recon on cine files): cine models
#: are trained at it (README "Dynamic (cine) data")
DEFAULT_CINE_ACCELERATION = 8.0


def _band(width: int, center_fraction: float) -> tuple[int, int]:
    num_low = int(round(width * center_fraction))
    pad = (width - num_low + 1) // 2
    return pad, pad + num_low


def make_kt_mask(spec: MaskSpec, frames: int, shape: tuple[int, int]) -> np.ndarray:
    """``(frames, H, W)`` bool k-t mask from ``spec`` (kind ``random`` or ``equispaced``,
    ``acceleration`` R per frame, ``center_fraction`` of the shared band, ``seed``).

    Raises :class:`MaskError` for another kind, fewer than one frame, or a band that alone
    holds more columns than R allows."""
    h, w = int(shape[0]), int(shape[1])
    frames = int(frames)
    if frames < 1 or h < 1 or w < 1:
        raise MaskError(f"cannot draw a k-t mask of {frames} frames of {h} x {w}")
    if spec.kind not in KT_KINDS:
        raise MaskError(
            f"k-t masks are {' or '.join(KT_KINDS)} (1-D, changing per frame); got {spec.kind!r}"
        )
    accel = float(spec.acceleration)
    if accel == 1.0:
        return np.ones((frames, h, w), dtype=bool)
    lo, hi = _band(w, spec.center_fraction)
    num_low = hi - lo
    total = max(int(round(w / accel)), 1)
    if num_low > total:
        raise MaskError(
            f"the calibration band ({num_low} of {w} columns, centre fraction "
            f"{spec.center_fraction:g}) alone holds more than R={accel:g} allows ({total} "
            f"columns): use a centre fraction <= {total / w:.3f} or R <= {w / num_low:.2f}"
        )
    outside = np.setdiff1d(np.arange(w), np.arange(lo, hi))
    base = 0 if spec.seed is None else int(spec.seed)
    mask = np.zeros((frames, w), dtype=bool)
    if spec.kind == "equispaced":
        spacing = accel if num_low == 0 else accel * (num_low - w) / (num_low * accel - w)
        spacing = max(float(spacing), 1.0)
        step = max(int(round(spacing)), 1)
        start = np.random.RandomState(stable_seed(base, "offset") % 2**32).randint(0, step)
    for t in range(frames):
        mask[t, lo:hi] = True
        if spec.kind == "random":
            rng = np.random.RandomState(stable_seed(base, "frame", t) % 2**32)
            mask[t, rng.choice(outside, size=total - num_low, replace=False)] = True
        else:
            offset = (start + t) % step
            cols = np.round(np.arange(offset, w, spacing)).astype(int)
            mask[t, cols[cols < w]] = True
    return np.ascontiguousarray(np.broadcast_to(mask[:, None, :], (frames, h, w)))


def kt_summary(mask: np.ndarray) -> dict[str, Any]:
    """JSON-ready facts of a ``(T, H, W)`` mask: achieved R per frame and overall (points /
    sampled points), the shared fully sampled centre (rows, cols) and of the frames' union."""
    m = np.asarray(mask, dtype=bool)
    per_frame = [float(f.size / max(int(f.sum()), 1)) for f in m]
    return {
        "frames": int(m.shape[0]),
        "acceleration_per_frame": per_frame,
        "acceleration": float(m.size / max(int(m.sum()), 1)),
        "shared_center": list(fully_sampled_center(m.all(axis=0))),
        "union_center": list(fully_sampled_center(m.any(axis=0))),
    }
