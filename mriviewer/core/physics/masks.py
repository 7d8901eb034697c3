"""Sampling masks: fastMRI-compatible 1-D random / equispaced, 2-D Poisson disc and Gaussian.

Every mask is an ``(H, W)`` bool array (a 1-D Cartesian mask is broadcast along the readout axis
``H``; phase-encode lines run along the last axis ``W``, as in fastMRI). ``SamplingMask`` carries
the spec that made it and reports its achieved acceleration.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mriviewer.core.errors import MaskError

MASK_KINDS = ("random", "equispaced", "poisson", "gaussian", "array")


def stable_seed(*parts: object) -> int:
    """A reproducible 32-bit seed from a stable hash of ``parts`` (e.g. file name and slice)."""
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


@dataclass(frozen=True)
class MaskSpec:
    """How to draw a mask. ``center_fraction`` is for 1-D masks, ``calib`` (pixels) for 2-D."""

    kind: str = "random"
    acceleration: float = 4.0
    center_fraction: float = 0.08
    calib: int = 20
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.kind not in MASK_KINDS:
            raise MaskError(
                f"unknown mask type {self.kind!r}; choose one of {', '.join(MASK_KINDS)}"
            )
        if self.kind != "array" and not (
            self.acceleration >= 1.0 and np.isfinite(self.acceleration)
        ):
            raise MaskError(f"acceleration must be a finite number >= 1, got {self.acceleration}")
        if not 0.0 <= self.center_fraction <= 1.0:
            raise MaskError(f"center fraction must be in [0, 1], got {self.center_fraction}")
        if self.calib < 0:
            raise MaskError(f"calibration size must be >= 0, got {self.calib}")

    def to_dict(self) -> dict:
        """JSON-ready dictionary of the spec."""
        return asdict(self)


@dataclass
class SamplingMask:
    """An ``(H, W)`` bool sampling pattern with the spec that produced it."""

    array: np.ndarray
    spec: MaskSpec = field(default_factory=lambda: MaskSpec(kind="array"))

    def __post_init__(self) -> None:
        self.array = validate_mask_array(self.array)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def achieved_acceleration(self) -> float:
        """Number of k-space points divided by the number of sampled points."""
        return float(self.array.size / self.array.sum())

    @property
    def sampled_fraction(self) -> float:
        return float(self.array.mean())

    def acs_size(self) -> tuple[int, int]:
        """Size (rows, cols) of the fully sampled centre block around the k-space centre."""
        return fully_sampled_center(self.array)

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "shape": list(self.shape),
            "achieved_acceleration": self.achieved_acceleration,
        }


def validate_mask_array(array: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    """Check an ``(H, W)`` mask (or a 1-D line pattern, broadcast later) and return it as bool."""
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise MaskError(f"mask must be 2-D (H, W), got shape {arr.shape}", path)
    if arr.size == 0:
        raise MaskError("mask is empty (zero size)", path)
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    if not np.all(np.isfinite(arr)):
        raise MaskError("mask contains NaN or Inf", path)
    out = arr != 0
    if not out.any():
        raise MaskError("mask samples no k-space point", path)
    return out


def fully_sampled_center(mask: np.ndarray) -> tuple[int, int]:
    """Largest fully sampled centred rectangle (rows, cols) of an ``(H, W)`` mask."""
    h, w = mask.shape
    cy, cx = h // 2, w // 2
    if not mask[cy, cx]:
        return (0, 0)
    rows = 1
    while rows < h:
        top, bottom = cy - rows // 2 - 1, cy + (rows + 1) // 2
        grown = False
        for r in (top, bottom):
            if 0 <= r < h and mask[r, cx]:
                grown = True
        if not grown:
            break
        rows += 1
    cols = 1
    while cols < w:
        left, right = cx - cols // 2 - 1, cx + (cols + 1) // 2
        if (0 <= left and mask[cy, left]) or (right < w and mask[cy, right]):
            cols += 1
        else:
            break
    return (rows, cols)


def _rng(seed: int | None) -> np.random.RandomState:
    return np.random.RandomState(None if seed is None else seed % (2**32))


def random_lines(num_cols: int, acceleration: float, center_fraction: float, rng) -> np.ndarray:
    """fastMRI RandomMaskFunc rule: keep ``round(W * cf)`` centre columns, others with
    probability ``(W / R - N_low) / (W - N_low)``. Returns a ``(W,)`` bool line pattern."""
    num_low = int(round(num_cols * center_fraction))
    prob = (num_cols / acceleration - num_low) / max(num_cols - num_low, 1)
    mask = rng.uniform(size=num_cols) < prob
    pad = (num_cols - num_low + 1) // 2
    mask[pad : pad + num_low] = True
    return mask


def equispaced_lines(num_cols: int, acceleration: float, center_fraction: float, rng) -> np.ndarray:
    """fastMRI EquiSpacedMaskFunc rule: every R-th column from a random offset plus the centre."""
    num_low = int(round(num_cols * center_fraction))
    step = max(int(round(acceleration)), 1)
    offset = rng.randint(0, step)
    mask = np.zeros(num_cols, dtype=bool)
    mask[offset::step] = True
    pad = (num_cols - num_low + 1) // 2
    mask[pad : pad + num_low] = True
    return mask


def poisson_disc(
    shape: tuple[int, int], acceleration: float, calib: int, seed: int | None
) -> np.ndarray:
    """2-D Poisson-disc pattern from sigpy with a ``calib x calib`` fully sampled centre."""
    import sigpy.mri

    h, w = shape
    c = (min(calib, h), min(calib, w))
    arr = sigpy.mri.poisson(
        (h, w),
        acceleration,
        calib=c,
        dtype=np.complex64,
        crop_corner=False,
        seed=0 if seed is None else int(seed % (2**31)),
    )
    return np.abs(arr) > 0


def gaussian_density(shape: tuple[int, int], acceleration: float, calib: int, rng) -> np.ndarray:
    """2-D variable-density pattern: points drawn with a Gaussian density centred in k-space,
    scaled (by bisection on the width) so the expected acceleration matches, plus a calibration
    square."""
    h, w = shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    r2 = yy**2 + xx**2
    calib_mask = np.zeros(shape, dtype=bool)
    ch, cw = min(calib, h), min(calib, w)
    calib_mask[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw] = True
    target = h * w / acceleration - calib_mask.sum()
    if target <= 0:
        return calib_mask
    lo, hi = 1e-3, 1e3
    for _ in range(60):
        sigma = np.sqrt(lo * hi)
        prob = np.exp(-r2 / (2 * sigma**2))
        expected = prob[~calib_mask].sum()
        if expected > target:
            hi = sigma
        else:
            lo = sigma
    prob = np.clip(np.exp(-r2 / (2 * np.sqrt(lo * hi) ** 2)), 0, 1)
    return (rng.uniform(size=shape) < prob) | calib_mask


def make_mask(spec: MaskSpec, shape: tuple[int, int]) -> SamplingMask:
    """Draw a mask of ``shape = (H, W)`` from ``spec`` (reproducible for a given seed)."""
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise MaskError(f"cannot draw a mask of shape {shape}")
    rng = _rng(spec.seed)
    if spec.kind == "random":
        lines = random_lines(w, spec.acceleration, spec.center_fraction, rng)
        array = np.broadcast_to(lines[None, :], (h, w)).copy()
    elif spec.kind == "equispaced":
        lines = equispaced_lines(w, spec.acceleration, spec.center_fraction, rng)
        array = np.broadcast_to(lines[None, :], (h, w)).copy()
    elif spec.kind == "poisson":
        array = poisson_disc((h, w), spec.acceleration, spec.calib, spec.seed)
    elif spec.kind == "gaussian":
        array = gaussian_density((h, w), spec.acceleration, spec.calib, rng)
    else:
        raise MaskError("an 'array' mask is loaded from a file or drawn, not generated")
    return SamplingMask(array, spec)


def save_mask(mask: SamplingMask, path: str | Path) -> Path:
    """Write a mask as ``.npy`` (bool array) atomically; returns the path."""
    from mriviewer.core.io.atomic import atomic_write_path

    path = Path(path)
    with atomic_write_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, mask.array, allow_pickle=False)
    return path


def load_mask(path: str | Path, shape: tuple[int, int] | None = None) -> SamplingMask:
    """Read a user mask from ``.npy`` (or any k-space-like npy), checking shape if given."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise MaskError("mask file not found", path) from exc
    except (ValueError, OSError, EOFError) as exc:
        raise MaskError(f"not a readable .npy mask ({exc})", path) from exc
    if isinstance(arr, np.lib.npyio.NpzFile):  # pragma: no cover - np.load of .npz
        raise MaskError("expected a .npy mask, got an .npz archive", path)
    arr = validate_mask_array(arr, path)
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise MaskError(f"mask shape {arr.shape} does not match k-space shape {tuple(shape)}", path)
    return SamplingMask(arr, MaskSpec(kind="array", acceleration=1.0, seed=None))
