"""Sampling masks: fastMRI-compatible 1-D random / equispaced, 2-D Poisson disc and Gaussian.

Every mask is an ``(H, W)`` bool array (a 1-D Cartesian mask is broadcast along the readout axis
``H``; phase-encode lines run along the last axis ``W``, as in fastMRI). ``SamplingMask`` carries
the spec that made it and reports its achieved acceleration.

Settings are validated against the matrix before any generator runs (:func:`check_reachable`),
the same rules for every kind:

- R = 1 gives the full mask (inside the acquired band) for every kind; no generator runs.
- R asking for less than one line (1-D) or one point (2-D) is refused (:class:`MaskError`).
- A calibration region (1-D centre block ``round(W * center_fraction)`` columns, 2-D
  ``calib x calib`` square) that alone holds more than 10% over the points R allows is refused
  with the largest calibration and R that fit.
- Poisson disc runs a bounded search (at most :data:`POISSON_MAX_DRAWS` sigpy pattern draws,
  never sigpy's own unbounded loop); when its nearest pattern misses R by more than 10% the
  request is refused, naming the nearest R. An R more than 10% below the densest Poisson-disc
  pattern (:data:`POISSON_DENSEST_R` outside the calibration square) is refused before drawing.
- Any generated mask whose achieved R misses the request by more than 10% (random draws on few
  columns, equispaced rounding, fastMRI's equispaced rule adding the centre) carries a line in
  ``SamplingMask.warnings``.

Masks of zero-padded files (fastMRI knee) are drawn inside the acquired band (``band``
argument, see :mod:`mriviewer.core.physics.band`); R is reported over the band.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mriviewer.core.errors import MaskError

MASK_KINDS = ("random", "equispaced", "poisson", "gaussian", "array")
#: relative miss of the achieved R above which a mask carries a warning (or is refused)
R_TOLERANCE = 0.10
#: most sigpy Poisson-disc pattern draws one mask may take (bounds the search's time)
POISSON_MAX_DRAWS = 30
#: the Poisson search stops once its slope interval is narrower than this (patterns no longer
#: change); with POISSON_MAX_DRAWS it bounds the draws to about 20 on fastMRI-sized matrices
POISSON_SLOPE_RESOLUTION = 1e-3
#: a Poisson-disc pattern (points >= 1 pixel apart) is never denser than about this R outside
#: its calibration square (sigpy's densest draws measured R 1.20-1.34 on 128 x 40 .. 640 x 368);
#: requests more than 10% below the bound it implies are refused without drawing
POISSON_DENSEST_R = 1.15


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
    #: acquired columns ``(start, stop)``; None = all columns. R is reported over the band.
    band: tuple[int, int] | None = None
    #: one line per problem the user should know (e.g. achieved R misses the request by > 10%)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.array = validate_mask_array(self.array)
        if self.band is not None:
            start, stop = int(self.band[0]), int(self.band[1])
            if not 0 <= start < stop <= self.array.shape[1]:
                raise MaskError(
                    f"acquired band [{start}, {stop}) is outside the mask's "
                    f"{self.array.shape[1]} columns"
                )
            if not self.array[:, start:stop].any():
                raise MaskError(f"mask samples no point inside the acquired band [{start}, {stop})")
            self.band = None if (start, stop) == (0, self.array.shape[1]) else (start, stop)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    def _in_band(self) -> np.ndarray:
        return self.array if self.band is None else self.array[:, self.band[0] : self.band[1]]

    @property
    def achieved_acceleration(self) -> float:
        """Number of k-space points divided by the number of sampled points, both counted
        inside the acquired band (all columns when ``band`` is None)."""
        inside = self._in_band()
        return float(inside.size / inside.sum())

    @property
    def sampled_fraction(self) -> float:
        """Fraction of the acquired band's points that are sampled."""
        return float(self._in_band().mean())

    def acs_size(self) -> tuple[int, int]:
        """Size (rows, cols) of the fully sampled centre block around the k-space centre."""
        return fully_sampled_center(self.array)

    def to_dict(self) -> dict:
        out = {
            "spec": self.spec.to_dict(),
            "shape": list(self.shape),
            "achieved_acceleration": self.achieved_acceleration,
            "warnings": list(self.warnings),
        }
        if self.band is not None:
            out["band"] = list(self.band)
        return out


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
    """Size (rows, cols) of the largest fully sampled rectangle that contains the centre
    ``(H // 2, W // 2)`` of an ``(H, W)`` mask: the one with the widest narrow side (what
    calibration needs), then the largest area; (0, 0) when the centre itself is not sampled.
    A 1-D mask gives all rows by its central band of lines."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    cy, cx = h // 2, w // 2
    if not mask[cy, cx]:
        return (0, 0)
    # per row: the run of sampled points through column cx, [left, right)
    left = np.zeros(h, dtype=int)
    right = np.zeros(h, dtype=int)
    for r in np.flatnonzero(mask[:, cx]):
        row = mask[r]
        gaps_left = np.flatnonzero(~row[:cx])
        gaps_right = np.flatnonzero(~row[cx:])
        left[r] = gaps_left[-1] + 1 if gaps_left.size else 0
        right[r] = cx + gaps_right[0] if gaps_right.size else w
    # rows sampled at column cx, contiguous through cy
    top = cy
    while top > 0 and mask[top - 1, cx]:
        top -= 1
    bottom = cy + 1
    while bottom < h and mask[bottom, cx]:
        bottom += 1
    best = (0, 0, 0, 0)  # narrow side, area, rows, cols
    for r0 in range(top, cy + 1):
        lo = np.maximum.accumulate(left[r0:bottom])
        hi = np.minimum.accumulate(right[r0:bottom])
        heights = np.arange(1, bottom - r0 + 1)
        widths = np.where(r0 + heights > cy, hi - lo, 0)  # rectangles that contain cy
        narrow = np.minimum(heights, widths)
        score = narrow * (h * w + 1) + heights * widths  # the narrow side first, then area
        k = int(np.argmax(score))
        candidate = (int(narrow[k]), int(heights[k] * widths[k]), int(heights[k]), int(widths[k]))
        best = max(best, candidate)
    return (best[2], best[3])


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
) -> tuple[np.ndarray, float]:
    """2-D Poisson-disc pattern (sigpy's generator) with a ``calib x calib`` fully sampled centre.

    The search over sigpy's density slope is sigpy.mri.poisson's bisection (same draws, same
    result whenever sigpy's own search returns) but bounded: at most :data:`POISSON_MAX_DRAWS`
    draws, stopping at sigpy's tolerance (|R - target| < 0.1) or when the slope interval is
    narrower than :data:`POISSON_SLOPE_RESOLUTION`. Returns ``(pattern, achieved R)``
    of the draw closest to ``acceleration``; the caller decides whether that is close enough.
    Raises :class:`MaskError` if sigpy's generator is unavailable.
    """
    try:
        from sigpy.mri.samp import _poisson
    except ImportError as exc:  # pragma: no cover - depends on the installed sigpy
        raise MaskError(f"sigpy's Poisson-disc generator is unavailable ({exc})") from exc

    ny, nx = shape
    c = (min(calib, ny), min(calib, nx))
    y, x = np.mgrid[:ny, :nx]
    x = np.maximum(abs(x - nx / 2) - c[1] / 2, 0)
    if x.max() > 0:
        x /= x.max()
    y = np.maximum(abs(y - ny / 2) - c[0] / 2, 0)
    if y.max() > 0:
        y /= y.max()
    r = np.sqrt(x**2 + y**2)
    seed_value = 0 if seed is None else int(seed % (2**31))
    slope_min, slope_max = 0.0, float(max(nx, ny))
    best: tuple[float, np.ndarray] | None = None
    for _ in range(POISSON_MAX_DRAWS):
        if not slope_max - slope_min > POISSON_SLOPE_RESOLUTION:
            break  # the draws no longer change: sigpy's loop would spin here forever
        slope = (slope_max + slope_min) / 2
        radius_x = np.clip((1 + r * slope) * nx / max(nx, ny), 1, None)
        radius_y = np.clip((1 + r * slope) * ny / max(nx, ny), 1, None)
        pattern = _poisson(nx, ny, 30, radius_x, radius_y, c, seed_value) > 0
        count = int(pattern.sum())
        actual = nx * ny / count if count else float("inf")
        if best is None or abs(actual - acceleration) < abs(best[0] - acceleration):
            best = (actual, pattern)
        if abs(actual - acceleration) < 0.1:
            return pattern, float(actual)
        if actual < acceleration:
            slope_min = slope
        else:
            slope_max = slope
    assert best is not None
    return best[1], float(best[0])


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


def _relative_miss(achieved: float, requested: float) -> float:
    return abs(achieved - requested) / requested


def _floor(value: float, digits: int) -> float:
    scale = 10**digits
    return math.floor(value * scale) / scale


def check_reachable(spec: MaskSpec, shape: tuple[int, int]) -> None:
    """Refuse settings no mask of ``shape = (H, W)`` (W = the acquired band's columns) can meet.

    Rules (module docstring): R = 1 is always reachable (the full mask); R must ask for at least
    one line (1-D) or point (2-D); the calibration region alone may exceed the points R allows
    by at most :data:`R_TOLERANCE` (relative R). Raises :class:`MaskError` with one line that
    names the largest calibration and R that fit. Poisson-disc reachability beyond this is
    checked by :func:`make_mask` after its bounded search.
    """
    h, w = int(shape[0]), int(shape[1])
    accel = float(spec.acceleration)
    if spec.kind == "array" or accel == 1.0:
        return
    if spec.kind in ("random", "equispaced"):
        budget = w / accel
        if budget < 1:
            raise MaskError(
                f"R={accel:g} asks for {budget:.2f} of {w} phase-encode lines (fewer than one): "
                f"R can be at most {w} on this matrix"
            )
        num_low = int(round(w * spec.center_fraction))
        if num_low > budget and _relative_miss(w / num_low, accel) > R_TOLERANCE:
            if spec.kind == "equispaced":
                # every R-th line is kept besides the centre (fastMRI's EquiSpacedMaskFunc):
                # about n + ceil((w - n) / R) lines; the widest centre still within tolerance
                lines = next(
                    (
                        n
                        for n in range(math.floor(budget), -1, -1)
                        if _relative_miss(w / (n + math.ceil((w - n) / accel)), accel)
                        <= R_TOLERANCE
                    ),
                    0,
                )
            else:  # random: the other lines are drawn so that w / R are kept in all
                lines = math.floor(budget)
            raise MaskError(
                f"centre fraction {spec.center_fraction:g} keeps {num_low} of {w} lines, more "
                f"than the {budget:.1f} that R={accel:g} allows: use a centre fraction <= "
                f"{_floor(lines / w, 3):g} or R <= {_floor(w / num_low, 2):g}"
            )
        return
    budget = h * w / accel
    if budget < 1:
        raise MaskError(
            f"R={accel:g} asks for fewer than one of the {h} x {w} k-space points: R can be at "
            f"most {h * w} on this matrix"
        )
    ch, cw = min(spec.calib, h), min(spec.calib, w)
    points = ch * cw
    if points > budget and _relative_miss(h * w / points, accel) > R_TOLERANCE:
        fit = spec.calib
        while fit > 0 and min(fit, h) * min(fit, w) > budget:
            fit -= 1
        raise MaskError(
            f"calibration {ch} x {cw} ({points} points) alone exceeds the {budget:.0f} points "
            f"R={accel:g} allows on {h} x {w}: use a calibration <= {fit} or "
            f"R <= {_floor(h * w / points, 2):g}"
        )


def make_mask(
    spec: MaskSpec, shape: tuple[int, int], band: tuple[int, int] | None = None
) -> SamplingMask:
    """Draw an ``(H, W)`` bool mask from ``spec`` (reproducible for a given seed).

    band: acquired phase-encode columns ``(start, stop)`` of a zero-padded file (see
    :mod:`mriviewer.core.physics.band`); the mask is drawn on the ``(H, stop - start)`` band,
    its centre moved onto the k-space centre column ``W // 2``, and columns outside the band
    are never sampled. None = all columns. R, centre fraction and calibration refer to the band.

    The settings are checked first (:func:`check_reachable`); R = 1 gives the full band.
    Raises :class:`MaskError` (one line) for settings no mask can meet, or a Poisson-disc R
    whose nearest pattern misses by more than 10%; a generated mask whose achieved R misses
    the request by more than 10% carries a line in ``warnings``. Time is bounded for every
    kind (Poisson disc: at most :data:`POISSON_MAX_DRAWS` pattern draws).
    """
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise MaskError(f"cannot draw a mask of shape {shape}")
    if spec.kind == "array":
        raise MaskError("an 'array' mask is loaded from a file or drawn, not generated")
    start, stop = (0, w) if band is None else (int(band[0]), int(band[1]))
    if not 0 <= start < stop <= w:
        raise MaskError(f"acquired band [{start}, {stop}) is outside the {w} k-space columns")
    wb = stop - start
    check_reachable(spec, (h, wb))
    accel = float(spec.acceleration)
    rng = _rng(spec.seed)
    if accel == 1.0:
        sub = np.ones((h, wb), dtype=bool)
    elif spec.kind == "random":
        lines = random_lines(wb, accel, spec.center_fraction, rng)
        sub = np.broadcast_to(lines[None, :], (h, wb))
    elif spec.kind == "equispaced":
        lines = equispaced_lines(wb, accel, spec.center_fraction, rng)
        sub = np.broadcast_to(lines[None, :], (h, wb))
    elif spec.kind == "poisson":
        c = min(spec.calib, h), min(spec.calib, wb)
        fc = c[0] * c[1] / (h * wb)
        densest = 1 / (fc + (1 - fc) / POISSON_DENSEST_R)
        if _relative_miss(densest, accel) > R_TOLERANCE and accel < densest:
            raise MaskError(
                f"poisson: R={accel:g} is denser than a Poisson-disc pattern gets on {h} x {wb} "
                f"with a {c[0]} x {c[1]} calibration (R >= about {densest:.2f}): use R = 1 for "
                "the full mask, a larger R, or a random or gaussian mask"
            )
        sub, achieved = poisson_disc((h, wb), accel, spec.calib, spec.seed)
        if _relative_miss(achieved, accel) > R_TOLERANCE:
            raise MaskError(
                f"poisson: R={accel:g} cannot be reached on {h} x {wb} with a {c[0]} x {c[1]} "
                f"calibration (nearest R={achieved:.2f} in at most {POISSON_MAX_DRAWS} draws): "
                "choose an R near that, a smaller calibration, or a random or gaussian mask"
            )
    else:  # gaussian (MaskSpec has checked the kind)
        sub = gaussian_density((h, wb), accel, spec.calib, rng)
    array = np.zeros((h, w), dtype=bool)
    shift = (w // 2 - start) - wb // 2
    array[:, start:stop] = np.roll(sub, shift, axis=1) if shift else sub
    mask = SamplingMask(array, spec, band=(start, stop))
    achieved = mask.achieved_acceleration
    if _relative_miss(achieved, accel) > R_TOLERANCE:
        why = {
            "equispaced": "fastMRI's equispaced rule keeps one line in "
            f"{max(int(round(accel)), 1)} plus the centre",
            "random": "a random draw on few lines",
            "gaussian": "a random draw on a small matrix",
        }.get(spec.kind, "")
        mask.warnings.append(
            f"{spec.kind} mask: achieved R={achieved:.2f} misses the requested R={accel:g} by "
            f"{100 * _relative_miss(achieved, accel):.0f}% on {h} x {wb}"
            + (f" ({why})" if why else "")
        )
    return mask


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
