"""Simulate multi-coil Cartesian k-space from a magnitude volume (NIfTI or ``.npy``).

Per slice: magnitude image ``m`` (one 2-D slice of the volume in the chosen orientation, placed
centred in the output matrix) -> complex image ``x = m * exp(i phi)`` with a smooth random
background phase ``phi`` -> coil images ``S_c x`` with sigpy birdcage coil maps -> centred
orthonormal FFT -> plus complex Gaussian noise. The noise level is set by the SNR: ``SNR = mean
noiseless RSS magnitude over the object (pixels above 10% of the volume maximum) / sigma``, where
``sigma`` is the standard deviation of the complex noise per k-space sample (and, the FFT being
orthonormal, per coil-image pixel); real and imaginary parts each get ``sigma / sqrt(2)``.
One ``sigma`` is used for the whole simulation (all slices, all splits).

The reference written beside the k-space is the RSS of the inverse FFT of the fully sampled
*noisy* k-space (as in fastMRI's ``reconstruction_rss``).

Reproducibility: slice ``k`` of the source gets its phase and noise from
``numpy.random.default_rng([seed, k])``, so a slice is identical whichever split contains it.
Everything needed to repeat the simulation is stored in each file's ``simulation`` attribute
(JSON).

Data diversity (:class:`Augmentation`, training splits only; without it the output is exactly
as above): each source slice is simulated ``repeats`` times, every copy with its own random
up-down / left-right flips, rotation, scaling, intensity curve (gamma), background-phase
strength and SNR (drawn from ``default_rng([seed, k, r, 1])`` for copy ``r`` of slice ``k``),
and every file with its own birdcage coil count and radius (a file holds one coil count).
``noise_sigma`` is then per slice: the file's mean noiseless RSS over the object / the slice's
SNR. The draws of every slice are listed in the ``simulation`` record (``augmentation``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer import __version__
from mriviewer.core.errors import ConfigError, KSpaceReadError
from mriviewer.core.io.fastmri import write_fastmri
from mriviewer.core.physics.fft import fft2c_np, rss

ORIENTATIONS = ("axial", "coronal", "sagittal")
# Slice axis of a RAS+ volume for each orientation; display rows run from the top of the view.
_SLICE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


@dataclass(frozen=True)
class Augmentation:
    """Random variations for training data (see the module docstring); the defaults vary nothing.

    flip: random up-down and left-right flips (probability 1/2 each). rotate: maximum rotation
    in degrees (uniform in ``[-rotate, rotate]``). scale: zoom range (uniform). gamma: range of
    the intensity curve ``m -> peak * (m / peak) ** gamma`` (uniform in log gamma; ``peak`` is
    the volume's maximum). snr: SNR range per slice (uniform; None keeps the settings' SNR).
    phase_strength: range of the peak background phase in radians per slice (None keeps the
    settings'). coils / coil_radii: per file, one of these coil counts / birdcage radii (empty
    keeps the settings'). repeats: copies of every source slice, each with its own draws.
    """

    flip: bool = False
    rotate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    gamma: tuple[float, float] = (1.0, 1.0)
    snr: tuple[float, float] | None = None
    phase_strength: tuple[float, float] | None = None
    coils: tuple[int, ...] = ()
    coil_radii: tuple[float, ...] = ()
    repeats: int = 1

    def __post_init__(self) -> None:
        def check_range(name: str, value, low: float) -> None:
            if value is not None and not (len(value) == 2 and low <= value[0] <= value[1]):
                raise ConfigError(f"augmentation {name} must be LOW,HIGH with {low} <= LOW <= HIGH")

        if not 0 <= self.rotate <= 180:
            raise ConfigError(f"rotation must be in [0, 180] degrees, got {self.rotate}")
        check_range("scale", self.scale, 0.1)
        check_range("gamma", self.gamma, 0.05)
        check_range("snr", self.snr, 1e-3)
        check_range("phase_strength", self.phase_strength, 0.0)
        if any(int(c) < 1 for c in self.coils):
            raise ConfigError(f"coil counts must be >= 1, got {list(self.coils)}")
        if any(float(r) <= 0 for r in self.coil_radii):
            raise ConfigError(f"coil radii must be > 0, got {list(self.coil_radii)}")
        if int(self.repeats) < 1:
            raise ConfigError(f"repeats must be >= 1, got {self.repeats}")


@dataclass(frozen=True)
class SimulationSettings:
    """Everything that determines a simulation (stored as JSON in every output file).

    matrix: output ``(H, W)``; None keeps the native slice size padded up to even numbers.
    coils: birdcage coil count. snr: see the module docstring. phase_strength: peak background
    phase in radians; phase_smoothness: Gaussian smoothing width as a fraction of the matrix.
    """

    orientation: str = "axial"
    matrix: tuple[int, int] | None = None
    coils: int = 8
    snr: float = 40.0
    seed: int = 0
    phase_strength: float = np.pi
    phase_smoothness: float = 0.15
    coil_radius: float = 1.2
    augment: Augmentation | None = None  # training-data variations (None: none)

    def __post_init__(self) -> None:
        if self.orientation not in ORIENTATIONS:
            raise ConfigError(
                f"unknown orientation {self.orientation!r}; choose {', '.join(ORIENTATIONS)}"
            )
        if self.coils < 1:
            raise ConfigError(f"coil count must be >= 1, got {self.coils}")
        if not (np.isfinite(self.snr) and self.snr > 0):
            raise ConfigError(f"SNR must be a positive number, got {self.snr}")
        if self.matrix is not None and (len(self.matrix) != 2 or min(self.matrix) < 8):
            raise ConfigError(f"matrix must be two sizes >= 8, got {self.matrix}")
        if self.phase_strength < 0 or self.phase_smoothness <= 0:
            raise ConfigError("phase strength must be >= 0 and phase smoothness > 0")
        if self.coil_radius <= 0:
            raise ConfigError(f"coil radius must be > 0, got {self.coil_radius}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["matrix"] = None if self.matrix is None else list(self.matrix)
        if self.augment is None:
            d.pop("augment")
        return d


@dataclass(frozen=True)
class Split:
    """A named half-open slice range ``[start, stop)`` of the source volume."""

    name: str
    start: int
    stop: int

    @property
    def slices(self) -> range:
        return range(self.start, self.stop)


@dataclass
class SourceVolume:
    """A magnitude volume ``(X, Y, Z)`` in RAS+ orientation (or a single ``(H, W)`` slice)."""

    data: np.ndarray
    path: Path
    info: dict[str, Any] = field(default_factory=dict)

    def num_slices(self, orientation: str) -> int:
        if self.data.ndim == 2:
            return 1
        return int(self.data.shape[_SLICE_AXIS[orientation]])

    def slice_image(self, orientation: str, index: int) -> np.ndarray:
        """One slice as an ``(rows, cols)`` float32 image, top of the view first.

        axial: rows anterior->posterior, cols patient left->right (neurological view);
        coronal: rows superior->inferior, cols left->right; sagittal: rows superior->inferior,
        cols posterior->anterior. A 2-D source is its own single slice.
        """
        if self.data.ndim == 2:
            if index != 0:
                raise ConfigError(f"a 2-D source has one slice; slice {index} does not exist")
            return self.data.astype(np.float32)
        axis = _SLICE_AXIS[orientation]
        plane = np.take(self.data, index, axis=axis)  # remaining axes keep RAS order
        # plane axes: axial (x, y), coronal (x, z), sagittal (y, z) -> rows = second axis, top first
        return np.ascontiguousarray(plane.T[::-1, :]).astype(np.float32)


def load_source(path: str | Path) -> SourceVolume:
    """Read a magnitude volume from NIfTI (``.nii``/``.nii.gz``, reoriented to RAS+) or ``.npy``.

    A ``.npy`` array must be 3-D ``(X, Y, Z)`` in RAS-like axis order or a single 2-D slice.
    Complex input is reduced to its magnitude. Raises :class:`KSpaceReadError` on bad input.
    """
    path = Path(path)
    if not path.exists():
        raise KSpaceReadError("source volume not found", path)
    if path.is_dir():
        raise KSpaceReadError("is a directory, expected a NIfTI or .npy volume", path)
    info: dict[str, Any] = {"file": path.name, "sha256": _sha256(path)}
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x93NUMPY"):
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise KSpaceReadError(f"not a readable .npy volume ({exc})", path) from exc
        info["format"] = "npy"
    else:
        import nibabel

        try:
            image = nibabel.load(str(path))
            canonical = nibabel.as_closest_canonical(image)
            data = np.asarray(canonical.dataobj)
        except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad files
            raise KSpaceReadError(
                f"not a readable NIfTI or .npy volume ({type(exc).__name__}: {exc})", path
            ) from exc
        info["format"] = "nifti"
        info["voxel_size_mm"] = [float(v) for v in canonical.header.get_zooms()[:3]]
        info["reoriented_to"] = "RAS+"
    data = np.asarray(data)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3) or data.size == 0:
        raise KSpaceReadError(f"expected a 3-D volume or a 2-D slice, got shape {data.shape}", path)
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise KSpaceReadError(f"volume has non-numeric dtype {data.dtype}", path)
    data = np.abs(data).astype(np.float32)
    if not np.all(np.isfinite(data)):
        raise KSpaceReadError("volume contains NaN or Inf", path)
    if not data.any():
        raise KSpaceReadError("volume is all zeros", path)
    info["shape"] = list(data.shape)
    return SourceVolume(data=data, path=path, info=info)


def parse_split(text: str) -> Split:
    """``NAME:START:STOP`` (half-open slice range) -> :class:`Split`."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[0]:
        raise ConfigError(f"split {text!r} must look like NAME:START:STOP, e.g. train:40:120")
    try:
        start, stop = int(parts[1]), int(parts[2])
    except ValueError as exc:
        raise ConfigError(f"split {text!r}: START and STOP must be integers") from exc
    if not parts[0].replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"split name {parts[0]!r} may only hold letters, digits, - and _")
    return Split(parts[0], start, stop)


def check_splits(splits: list[Split], num_slices: int) -> None:
    """Refuse empty, out-of-range, duplicate-named or overlapping slice ranges."""
    if not splits:
        raise ConfigError("no slice range given")
    names = [s.name for s in splits]
    if len(set(names)) != len(names):
        raise ConfigError(f"split names must be unique, got {names}")
    for s in splits:
        if not 0 <= s.start < s.stop <= num_slices:
            raise ConfigError(
                f"split {s.name} {s.start}:{s.stop} must satisfy 0 <= START < STOP <= "
                f"{num_slices} (slices in this orientation)"
            )
    ordered = sorted(splits, key=lambda s: s.start)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start < a.stop:
            raise ConfigError(
                f"splits {a.name} {a.start}:{a.stop} and {b.name} {b.start}:{b.stop} overlap; "
                "training and test slices must never mix"
            )


def fit_to_matrix(image: np.ndarray, matrix: tuple[int, int] | None) -> np.ndarray:
    """Place an ``(h, w)`` slice centred in ``matrix`` (zero padding).

    A slice larger than the matrix is first shrunk (one zoom factor for both axes, cubic spline)
    to fit. ``matrix=None`` pads to the next even sizes.
    """
    h, w = image.shape
    if matrix is None:
        matrix = (h + h % 2, w + w % 2)
    mh, mw = int(matrix[0]), int(matrix[1])
    if h > mh or w > mw:
        from scipy.ndimage import zoom

        factor = min(mh / h, mw / w)
        image = np.clip(zoom(image, factor, order=3), 0, None)
        h, w = image.shape
        h, w = min(h, mh), min(w, mw)
        image = image[:h, :w]
    out = np.zeros((mh, mw), dtype=np.float32)
    top, left = (mh - h) // 2, (mw - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def smooth_phase(shape: tuple[int, int], strength: float, smoothness: float, rng) -> np.ndarray:
    """A smooth random phase map (radians), peak ``|phi| = strength``: low-pass filtered white
    noise (Gaussian width ``smoothness * max(shape)``) plus a random linear ramp."""
    from scipy.ndimage import gaussian_filter

    field_ = gaussian_filter(rng.standard_normal(shape), sigma=smoothness * max(shape), mode="wrap")
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    field_ = field_ / (np.abs(field_).max() or 1.0) + rng.uniform(-0.5, 0.5) * yy
    field_ = field_ + rng.uniform(-0.5, 0.5) * xx
    return (strength * field_ / (np.abs(field_).max() or 1.0)).astype(np.float32)


def coil_maps(coils: int, shape: tuple[int, int], radius: float = 1.2) -> np.ndarray:
    """``(C, H, W)`` complex64 birdcage coil maps (sigpy), scaled so max RSS is 1."""
    import sigpy.mri

    if coils == 1:
        return np.ones((1, *shape), dtype=np.complex64)
    maps = sigpy.mri.birdcage_maps((coils, *shape), r=radius).astype(np.complex64)
    return (maps / rss(maps).max()).astype(np.complex64)


class Simulator:
    """Simulate slices of one source volume with fixed settings (see the module docstring)."""

    def __init__(self, source: SourceVolume, settings: SimulationSettings) -> None:
        self.source = source
        self.settings = settings
        self.num_slices = source.num_slices(settings.orientation)
        self._images: dict[int, np.ndarray] = {}
        first = self.image(0) if self.num_slices == 1 else self.image(self.num_slices // 2)
        self.matrix = first.shape
        self.maps = coil_maps(settings.coils, self.matrix, settings.coil_radius)

    def image(self, index: int) -> np.ndarray:
        """Magnitude slice ``index`` placed in the output matrix, ``(H, W)`` float32."""
        if index not in self._images:
            raw = self.source.slice_image(self.settings.orientation, index)
            self._images[index] = fit_to_matrix(raw, self.settings.matrix)
        return self._images[index]

    def noise_sigma(self, slices: list[int]) -> float:
        """Complex noise std per k-space sample for the SNR, from the noiseless RSS of ``slices``."""
        total, count, peak = 0.0, 0, 0.0
        images = [self.image(k) * rss(self.maps) for k in slices]
        peak = max(float(im.max()) for im in images)
        for im in images:
            fg = im > 0.1 * peak
            total += float(im[fg].sum())
            count += int(fg.sum())
        if count == 0:
            raise ConfigError("the chosen slices hold no signal (all background)")
        return total / count / self.settings.snr

    def simulate_slice(self, index: int, sigma: float) -> np.ndarray:
        """Noisy fully sampled ``(C, H, W)`` complex64 k-space of source slice ``index``."""
        rng = np.random.default_rng([int(self.settings.seed), int(index)])
        phase = smooth_phase(
            self.matrix, self.settings.phase_strength, self.settings.phase_smoothness, rng
        )
        image = self.image(index) * np.exp(1j * phase)
        kspace = fft2c_np(self.maps * image[None])
        noise = rng.standard_normal((2, *kspace.shape)) * (sigma / np.sqrt(2))
        return (kspace + noise[0] + 1j * noise[1]).astype(np.complex64)


def augment_image(image: np.ndarray, draws: dict[str, Any], peak: float) -> np.ndarray:
    """Apply one slice's draws (flips, rotation and scaling about the centre, gamma) to an
    ``(H, W)`` magnitude image; the output has the same shape, zeros outside the object."""
    from scipy.ndimage import affine_transform

    out = image
    if draws.get("flip_ud"):
        out = out[::-1]
    if draws.get("flip_lr"):
        out = out[:, ::-1]
    angle, zoom_ = np.deg2rad(draws.get("rotate", 0.0)), float(draws.get("scale", 1.0))
    if angle != 0.0 or zoom_ != 1.0:
        c, s_ = np.cos(angle), np.sin(angle)
        # output pixel o maps to input pixel M o + offset (rotation by angle, zoom by zoom_)
        matrix = np.array([[c, s_], [-s_, c]]) / zoom_
        centre = (np.array(out.shape) - 1) / 2.0
        offset = centre - matrix @ centre
        out = affine_transform(out, matrix, offset=offset, order=1, mode="constant", cval=0.0)
    gamma = float(draws.get("gamma", 1.0))
    if gamma != 1.0 and peak > 0:
        out = peak * (np.clip(out, 0, None) / peak) ** gamma
    return np.ascontiguousarray(np.clip(out, 0, None), dtype=np.float32)


def draw_augmentation(aug: Augmentation, seed: int, index: int, repeat: int) -> dict[str, Any]:
    """The random draws of copy ``repeat`` of source slice ``index`` (JSON-ready)."""
    rng = np.random.default_rng([int(seed), int(index), int(repeat), 1])
    draws: dict[str, Any] = {
        "slice": int(index),
        "repeat": int(repeat),
        "flip_ud": bool(aug.flip and rng.random() < 0.5),
        "flip_lr": bool(aug.flip and rng.random() < 0.5),
        "rotate": float(rng.uniform(-aug.rotate, aug.rotate)) if aug.rotate else 0.0,
        "scale": float(rng.uniform(*aug.scale)),
        "gamma": float(np.exp(rng.uniform(np.log(aug.gamma[0]), np.log(aug.gamma[1])))),
    }
    if aug.snr is not None:
        draws["snr"] = float(rng.uniform(*aug.snr))
    if aug.phase_strength is not None:
        draws["phase_strength"] = float(rng.uniform(*aug.phase_strength))
    return draws


def _augmented_file(
    sim: Simulator, items: list[tuple[int, int]], file_key: list[int]
) -> tuple[np.ndarray, dict[str, Any]]:
    """K-space ``(S, C, H, W)`` of the ``(slice, repeat)`` items of one file and its record."""
    settings = sim.settings
    aug = settings.augment or Augmentation()
    frng = np.random.default_rng([int(settings.seed), *file_key, 2])
    coils = int(frng.choice(aug.coils)) if aug.coils else settings.coils
    radius = float(frng.choice(aug.coil_radii)) if aug.coil_radii else settings.coil_radius
    maps = coil_maps(coils, sim.matrix, radius)
    peak = float(sim.source.data.max())
    draws = [draw_augmentation(aug, settings.seed, k, r) for k, r in items]
    images = [augment_image(sim.image(k), d, peak) for (k, _), d in zip(items, draws, strict=True)]
    weighted = [im * rss(maps) for im in images]
    top = max(float(w.max()) for w in weighted)
    fg = np.concatenate([w[w > 0.1 * top] for w in weighted])
    if fg.size == 0:
        raise ConfigError("the chosen slices hold no signal (all background)")
    signal = float(fg.mean())
    kspace = []
    for (k, r), image, d in zip(items, images, draws, strict=True):
        rng = np.random.default_rng([int(settings.seed), int(k), int(r), 3])
        strength = d.get("phase_strength", settings.phase_strength)
        phase = smooth_phase(sim.matrix, strength, settings.phase_smoothness, rng)
        d["noise_sigma"] = sigma = signal / d.get("snr", settings.snr)
        ks = fft2c_np(maps * (image * np.exp(1j * phase))[None])
        noise = rng.standard_normal((2, *ks.shape)) * (sigma / np.sqrt(2))
        kspace.append((ks + noise[0] + 1j * noise[1]).astype(np.complex64))
    record = {
        "coils": coils,
        "coil_radius": radius,
        "signal": signal,
        "augmentation": draws,
        "noise_sigma": [d["noise_sigma"] for d in draws],
        "coil_maps": f"sigpy.mri.birdcage_maps r={radius}, max RSS 1",
        "phase": "smooth random background phase, rng = default_rng([seed, slice, repeat, 3])",
    }
    return np.stack(kspace), record


def simulate(
    source_path: str | Path,
    out: str | Path,
    settings: SimulationSettings,
    splits: list[Split] | None = None,
    slices: tuple[int, int] | None = None,
    slices_per_file: int = 0,
) -> list[Path]:
    """Simulate and write fastMRI-layout files; returns the written paths.

    With ``splits``: ``out`` is a folder; split ``NAME`` goes to ``out/NAME/<stem>_NAME.h5``
    (or ``<stem>_NAME_partK.h5`` files of ``slices_per_file`` slices each when that is > 0).
    Without: ``out`` is the ``.h5`` file for the slice range ``slices`` (default: all slices;
    ``_partK`` suffixes as above; a folder ``out`` gets ``out/<stem>.h5``).
    Every file's ``simulation`` attribute records the settings, source, split and slice indices.
    """
    source = load_source(source_path)
    sim = Simulator(source, settings)
    user_splits = bool(splits)
    if splits:
        if slices is not None:
            raise ConfigError("give either a slice range or splits, not both")
        check_splits(splits, sim.num_slices)
    else:
        start, stop = slices if slices is not None else (0, sim.num_slices)
        splits = [Split("all", start, stop)]
        check_splits(splits, sim.num_slices)
    if slices_per_file < 0:
        raise ConfigError(f"slices per file must be >= 0, got {slices_per_file}")
    every = sorted(k for s in splits for k in s.slices)
    augmented = settings.augment is not None
    sigma = None if augmented else sim.noise_sigma(every)
    repeats = int(settings.augment.repeats) if augmented else 1
    stem = source.path.name.split(".")[0]
    out = Path(out)
    single = out if out.suffix else out / f"{stem}.h5"
    written: list[Path] = []
    for split in splits:
        indices = [(k, r) for k in split.slices for r in range(repeats)]
        chunk = slices_per_file or len(indices)
        parts = [indices[i : i + chunk] for i in range(0, len(indices), chunk)]
        for part_no, part in enumerate(parts):
            suffix = f"_part{part_no}" if len(parts) > 1 else ""
            if user_splits:
                path = out / split.name / f"{stem}_{split.name}{suffix}.h5"
            else:
                path = single.with_name(f"{single.stem}{suffix}.h5")
            slice_indices = [k for k, _ in part]
            if augmented:
                kspace, extra = _augmented_file(sim, part, [part[0][0], part[0][1]])
            else:
                kspace = np.stack([sim.simulate_slice(k, sigma) for k in slice_indices])
                extra = {}
            record = {
                "generator": f"mriviewer {__version__} simulate",
                "source": source.info,
                "settings": settings.to_dict(),
                "matrix": list(sim.matrix),
                "split": split.name,
                "split_range": [split.start, split.stop],
                "slice_indices": slice_indices,
                "noise_sigma": sigma,
                "noise_definition": (
                    "complex Gaussian, std per k-space sample; SNR = mean noiseless RSS over "
                    "pixels > 10% of max / sigma"
                ),
                "coil_maps": f"sigpy.mri.birdcage_maps r={settings.coil_radius}, max RSS 1",
                "phase": "smooth random background phase, rng = default_rng([seed, slice])",
                "reference": "RSS of the fully sampled noisy k-space",
            } | extra
            write_fastmri(
                path,
                kspace,
                recon_matrix=sim.matrix,
                attrs={
                    "simulation": json.dumps(record),
                    "acquisition": f"simulated-{settings.orientation}",
                },
            )
            written.append(path)
    return written


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
