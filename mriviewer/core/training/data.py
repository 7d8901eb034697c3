"""Training data: slices of k-space files in a folder, with coil maps, masks and normalisation.

Every file in the folder that :func:`mriviewer.core.io.open_kspace` reads (fastMRI-layout HDF5
such as ``write_fastmri`` / ``mriviewer simulate`` produce, and the other supported formats)
contributes all its slices. A sample is prepared exactly as the inference path prepares a case
(:func:`mriviewer.core.compare.prepare_problem`): the fully sampled k-space is masked, divided
by :func:`mriviewer.core.compare.kspace_scale` of the masked data (the scale is recorded), and
coil maps come from the fully sampled centre (cached in memory and on disk). The training target
is the coil-combined fully sampled image ``S^H F^-1 y / scale``; metrics use the file's
magnitude reference in original units.

Masks: training samples draw a new mask per sample and step (``seed``); validation samples use
a fixed mask per case (``stable_seed(file name, slice, acceleration)``). ``center_fractions``
gives each acceleration its own 1-D centre fraction (e.g. 0.08 at 4x, 0.04 at 8x).

Readout crop (``crop_readout = h``, training samples only): with a 1-D mask the readout axis
(rows, H) is fully sampled, so an inverse FFT along the rows, a crop of ``h`` rows and a forward
FFT give the exact k-space of the cropped image (:func:`readout_crop`); coil maps, mask, target
and reference are cropped alike, and the normalisation scale is the full slice's. The crop's
centre is drawn (from the sample's seed) among the rows that hold the object.

Coil compression (``virtual_coils = V``): every slice with more than V coils has its fully
sampled k-space compressed to V virtual coils by an SVD over coils (:mod:`mriviewer.core.physics.coil_compression`) before
masking and coil-map estimation, for training and validation alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mriviewer.core.compare import kspace_scale
from mriviewer.core.errors import ConfigError, MriViewerError
from mriviewer.core.io import center_crop, open_kspace
from mriviewer.core.physics.band import acquired_band
from mriviewer.core.physics.coil_compression import compress_coils
from mriviewer.core.physics.coils import estimate_coil_maps
from mriviewer.core.physics.fft import ifft2c_np, rss
from mriviewer.core.physics.masks import MaskSpec, make_mask, stable_seed

SUFFIXES = (".h5", ".hdf5", ".npy", ".npz", ".mat", ".cfl", ".dat")
ONE_D_MASKS = ("random", "equispaced")


def _shift_rows(x: np.ndarray, inverse: bool) -> np.ndarray:
    """Centred orthonormal 1-D FFT (inverse when ``inverse``) along the rows (axis -2)."""
    fn = np.fft.ifft if inverse else np.fft.fft
    out = fn(np.fft.ifftshift(x, axes=-2), axis=-2, norm="ortho")
    return np.fft.fftshift(out, axes=-2)


def readout_crop(kspace: np.ndarray, start: int, size: int) -> np.ndarray:
    """Exact k-space of rows ``start .. start + size - 1`` of the image of ``(..., H, W)``
    k-space: centred inverse FFT along the readout (rows), crop, centred forward FFT.

    Equals ``fft2c(ifft2c(kspace)[..., start:start + size, :])`` (the column transform commutes
    with a crop of rows); valid for undersampled data only when every row of a sampled column is
    sampled, i.e. for 1-D (phase-encode) masks.
    """
    h = kspace.shape[-2]
    if not (0 <= start and 1 <= size and start + size <= h):
        raise ConfigError(f"readout crop {start}:{start + size} outside the {h} rows")
    hybrid = _shift_rows(kspace, inverse=True)[..., start : start + size, :]
    return _shift_rows(hybrid, inverse=False).astype(kspace.dtype, copy=False)


def crop_start(image: np.ndarray, size: int, rng: np.random.Generator) -> int:
    """First row of a ``size``-row window centred on a random row of the object (rows whose
    peak magnitude exceeds 10% of the image's), clamped inside the image."""
    h = image.shape[-2]
    profile = np.abs(image).max(axis=-1)
    rows = np.flatnonzero(profile > 0.1 * (profile.max() or 1.0))
    centre = int(rng.choice(rows)) if rows.size else h // 2
    return int(np.clip(centre - size // 2, 0, h - size))


@dataclass(frozen=True)
class SliceRef:
    """One slice of one file: ``path``, slice ``index`` and its k-space ``shape (C, H, W)``."""

    path: Path
    index: int
    shape: tuple[int, int, int]


@dataclass
class Sample:
    """One prepared training/validation slice (numpy, normalised units).

    kspace ``(C, H, W)`` complex64 masked and divided by ``scale``; maps ``(C, H, W)`` complex64;
    mask ``(H, W)`` bool; target ``(H, W)`` complex64 (normalised); reference ``(h, w)`` float32
    magnitude in original units.
    """

    kspace: np.ndarray
    maps: np.ndarray
    mask: np.ndarray
    target: np.ndarray
    reference: np.ndarray
    scale: float
    acceleration: float
    source: str
    rows: tuple[int, int] | None = None  # readout crop [start, stop) of the slice, if cropped


@dataclass
class Batch:
    """Samples of equal shape stacked as tensors: kspace/maps ``(B, C, H, W)``, mask/target
    ``(B, H, W)``, scale ``(B,)``; references and sources stay per sample."""

    kspace: torch.Tensor
    maps: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    scale: torch.Tensor
    references: list[np.ndarray]
    sources: list[str]

    def to(self, device: str | torch.device) -> Batch:
        """The batch with every tensor on ``device``."""
        return replace(
            self,
            kspace=self.kspace.to(device),
            maps=self.maps.to(device),
            mask=self.mask.to(device),
            target=self.target.to(device),
            scale=self.scale.to(device),
        )


def collate(samples: list[Sample]) -> Batch:
    """Stack samples of the same shape into a :class:`Batch` (ConfigError if shapes differ).

    A cine sample (:mod:`mriviewer.core.training.cine_data`: kspace ``(T, C, H, W)``) is one
    batch on its own with its frames as the batch axis: kspace and maps ``(T, C, H, W)`` (the
    maps repeated per frame), mask and target ``(T, H, W)``, scale ``(1,)``."""
    if not samples:
        raise ConfigError("cannot make a batch of no samples")
    if samples[0].kspace.ndim == 4:
        if len(samples) != 1:
            raise ConfigError("a cine batch holds one series (batch_size = 1)")
        (s,) = samples
        frames = s.kspace.shape[0]
        maps = torch.from_numpy(s.maps)
        return Batch(
            kspace=torch.from_numpy(s.kspace),
            maps=maps[None].expand(frames, *maps.shape).contiguous(),
            mask=torch.from_numpy(s.mask),
            target=torch.from_numpy(s.target),
            scale=torch.tensor([s.scale], dtype=torch.float32),
            references=[s.reference],
            sources=[s.source],
        )
    shapes = {s.kspace.shape for s in samples}
    if len(shapes) > 1:
        raise ConfigError(f"a batch needs slices of one shape, got {sorted(shapes)}")
    return Batch(
        kspace=torch.from_numpy(np.stack([s.kspace for s in samples])),
        maps=torch.from_numpy(np.stack([s.maps for s in samples])),
        mask=torch.from_numpy(np.stack([s.mask for s in samples])),
        target=torch.from_numpy(np.stack([s.target for s in samples])),
        scale=torch.tensor([s.scale for s in samples], dtype=torch.float32),
        references=[s.reference for s in samples],
        sources=[s.source for s in samples],
    )


def acceleration_settings(
    accelerations: list[float] | tuple[float, ...],
    center_fractions: list[float] | tuple[float, ...] | None = None,
) -> tuple[list[float], dict[float, float]]:
    """The training accelerations as floats and ``{R: centre fraction}`` (one centre fraction
    per acceleration, or none: the mask's own). Raises ConfigError for no acceleration or a
    count mismatch."""
    if not accelerations:
        raise ConfigError("at least one acceleration is needed")
    values = [float(a) for a in accelerations]
    if center_fractions is None:
        return values, {}
    if len(center_fractions) != len(values):
        raise ConfigError(
            f"center_fractions needs one value per acceleration ({len(values)}), "
            f"got {len(center_fractions)}"
        )
    return values, dict(zip(values, (float(c) for c in center_fractions), strict=True))


class SliceDataset:
    """All slices of the k-space files in ``folder`` (sorted by file name, then slice).

    mask: the :class:`MaskSpec` template (kind, centre fraction, calibration); accelerations:
    one or more accelerations (training draws one per sample). coil_method/calib: coil-map
    estimation (calib defaults to what inference uses: ``max(12, ACS width)``).
    """

    def __init__(
        self,
        folder: str | Path,
        mask: MaskSpec,
        accelerations: list[float] | tuple[float, ...],
        coil_method: str = "espirit",
        calib: int | None = None,
        max_slices: int | None = None,
        crop_readout: int | None = None,
        center_fractions: list[float] | tuple[float, ...] | None = None,
        virtual_coils: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError("data folder not found", self.folder)
        self.mask = mask
        self.accelerations, self.center_fractions = acceleration_settings(
            accelerations, center_fractions
        )
        for acc in self.accelerations:
            replace(mask, acceleration=acc)  # validates each acceleration
        self.coil_method = coil_method
        self.calib = calib
        self.crop_readout = None if crop_readout is None else int(crop_readout)
        self.virtual_coils = None if virtual_coils is None else int(virtual_coils)
        for acc in self.accelerations:
            replace(mask, acceleration=acc, center_fraction=self._center_fraction(acc))
        if self.crop_readout is not None and mask.kind not in ONE_D_MASKS:
            raise ConfigError(
                f"crop_readout needs a 1-D mask ({', '.join(ONE_D_MASKS)}): a {mask.kind} mask "
                "undersamples the readout axis"
            )
        self.slices: list[SliceRef] = []
        self._volumes: dict[Path, Any] = {}
        self._sources: list[dict[str, Any]] | None = None
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in SUFFIXES)
        for path in files:
            if path.suffix.lower() == ".cfl" and not path.with_suffix(".hdr").exists():
                continue
            volume = open_kspace(path)
            self._volumes[path] = volume
            shape = (volume.num_coils, *volume.matrix)
            self.slices.extend(SliceRef(path, k, shape) for k in range(volume.num_slices))
        if max_slices is not None:
            self.slices = self.slices[: int(max_slices)]
        if not self.slices:
            raise ConfigError(
                "no k-space slices found (expected fastMRI .h5 or other k-space files)",
                self.folder,
            )
        for ref in self.slices:
            if self.crop_readout is not None and not 8 <= self.crop_readout <= ref.shape[1]:
                raise ConfigError(
                    f"crop_readout {self.crop_readout} must be between 8 and the readout "
                    f"size {ref.shape[1]}",
                    ref.path,
                )

    def _center_fraction(self, acceleration: float) -> float:
        return self.center_fractions.get(float(acceleration), self.mask.center_fraction)

    def __len__(self) -> int:
        return len(self.slices)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for model cards and run records."""
        out: dict[str, Any] = {
            "folder": portable_folder(self.folder),
            "files": len(self._volumes),
            "slices": len(self.slices),
            "shapes": [list(shape) for shape in sorted({s.shape for s in self.slices})],
            "coil_method": self.coil_method,
            "normalisation": "k-space / 99th percentile of the zero-filled RSS magnitude "
            "(mriviewer.core.compare.kspace_scale of the masked data)",
            "target": "SENSE-combined fully sampled image",
        }
        if self.center_fractions:
            out["center_fractions"] = {f"{a:g}": c for a, c in self.center_fractions.items()}
        if self.crop_readout is not None:
            out["crop_readout"] = self.crop_readout
            out["crop_note"] = (
                "training samples: a random window of crop_readout readout rows over the object "
                "(exact k-space by inverse FFT, crop, FFT along the readout); validation on "
                "full slices"
            )
        if self.virtual_coils is not None:
            out["virtual_coils"] = self.virtual_coils
            out["coil_compression"] = (
                "slices with more coils: SVD over coils of the fully sampled k-space to "
                "virtual_coils virtual coils (Buehrer 2007, Huang 2008)"
            )
        if self._sources is None:  # read once: every saved card describes the data
            self._sources = simulation_sources(self._volumes)
        sources = self._sources
        if sources:
            out["sources"] = sources
        return out

    def _calib(self, mask_spec: MaskSpec, width: int) -> int:
        if self.calib is not None:
            return int(self.calib)
        if mask_spec.kind in ("random", "equispaced"):
            return int(max(12, round(width * mask_spec.center_fraction)))
        return int(max(12, mask_spec.calib))

    def _full_slice(self, ref: SliceRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fully sampled ``(C, H, W)`` k-space, coil maps and the ``(h, w)`` reference."""
        volume = self._volumes[ref.path]
        try:
            kspace = volume.read_kspace(ref.index)
            reference = volume.read_reference(ref.index)
        except MriViewerError:
            raise
        except Exception as exc:  # noqa: BLE001 - reader internals must not leak
            raise ConfigError(f"cannot read slice {ref.index} ({exc})", ref.path) from exc
        if reference is None:
            reference = center_crop(rss(ifft2c_np(kspace)), volume.recon_matrix)
        source = f"{ref.path.resolve()}#slice{ref.index}"
        if self.virtual_coils is not None and self.virtual_coils < kspace.shape[0]:
            kspace = compress_coils(kspace, self.virtual_coils)
            source += f"#vc{self.virtual_coils}"
        maps = estimate_coil_maps(
            kspace,
            method=self.coil_method,
            calib=self._calib(self.mask, kspace.shape[-1]),
            source=source,
            disk_cache=True,
        )
        return kspace, maps, np.asarray(reference, dtype=np.float32)

    def sample(
        self, i: int, seed: int, acceleration: float | None = None, crop: bool = True
    ) -> Sample:
        """Slice ``i`` with a mask drawn from ``seed`` (acceleration drawn too unless given).

        With ``crop_readout`` set (and ``crop``) the sample is a readout crop of the slice."""
        ref = self.slices[i]
        if acceleration is None:
            rng = np.random.default_rng(seed)
            acceleration = self.accelerations[int(rng.integers(len(self.accelerations)))]
        spec = replace(
            self.mask,
            acceleration=float(acceleration),
            center_fraction=self._center_fraction(acceleration),
            seed=int(seed) % 2**32,
        )
        kspace, maps, reference = self._full_slice(ref)
        # zero-padded phase-encode columns (fastMRI knee) are outside the band, never sampled
        mask = make_mask(spec, kspace.shape[-2:], band=acquired_band(kspace).columns).array
        under = kspace * mask[None]
        scale = kspace_scale(under)  # of the full slice, cropped or not
        target = (maps.conj() * ifft2c_np(kspace)).sum(0) / scale
        rows = None
        if crop and self.crop_readout is not None and self.crop_readout < kspace.shape[-2]:
            size = self.crop_readout
            start = crop_start(target, size, np.random.default_rng([int(seed) % 2**32, 1]))
            rows = slice(start, start + size)
            under = readout_crop(under, start, size)
            maps, mask, target = maps[:, rows], mask[rows], target[rows]
            if reference.shape[-2] == kspace.shape[-2]:
                reference = reference[rows]
            else:  # a reference of another size: the RSS of the cropped full k-space
                reference = rss(ifft2c_np(readout_crop(kspace, start, size))).astype(np.float32)
        return Sample(
            kspace=(under / np.float32(scale)).astype(np.complex64),
            maps=maps.astype(np.complex64),
            mask=mask,
            target=target.astype(np.complex64),
            reference=reference,
            scale=float(scale),
            acceleration=float(acceleration),
            source=f"{ref.path.name}#slice{ref.index}",
            rows=None if rows is None else (rows.start, rows.stop),
        )

    def validation_sample(self, i: int, acceleration: float) -> Sample:
        """Slice ``i`` with its fixed validation mask at ``acceleration``."""
        ref = self.slices[i]
        seed = stable_seed(ref.path.name, ref.index, acceleration)
        return self.sample(i, seed, acceleration, crop=False)

    def epoch_batches(self, epoch: int, batch_size: int, seed: int) -> list[list[int]]:
        """The batches of one epoch: same-shape slices shuffled by ``(seed, epoch)``.

        Deterministic, so a resumed run sees exactly the batches an uninterrupted one sees.
        """
        rng = np.random.default_rng(stable_seed("epoch", seed, epoch))
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, ref in enumerate(self.slices):
            groups.setdefault(ref.shape, []).append(i)
        batches = []
        for shape in sorted(groups):
            order = [groups[shape][j] for j in rng.permutation(len(groups[shape]))]
            batches.extend(order[s : s + batch_size] for s in range(0, len(order), batch_size))
        return [batches[j] for j in rng.permutation(len(batches))]

    def steps_per_epoch(self, batch_size: int) -> int:
        """Number of batches per epoch."""
        return len(self.epoch_batches(0, batch_size, 0))


def portable_folder(folder: str | Path) -> str:
    """A data folder as a model card records it: relative to the repository (the folder
    holding ``pyproject.toml`` above the package) or to the working directory when it lies
    inside either, else its last two components; never an absolute machine path."""
    path = Path(os.path.abspath(folder))
    repo = Path(__file__).resolve().parents[3]
    for root in (repo, Path.cwd()):
        try:
            return path.relative_to(root).as_posix() or "."
        except ValueError:
            continue
    return Path(*path.parts[-2:]).as_posix()


def simulation_sources(volumes: dict[Path, Any]) -> list[dict[str, Any]]:
    """What simulated files were made from: one entry per (source, split, seed, settings),
    with slice ranges, from each file's ``simulation`` attribute (``mriviewer simulate``)."""
    import json

    groups: dict[str, dict[str, Any]] = {}
    for path in volumes:
        record = _simulation_record(path)
        if record is None:
            continue
        source = record.get("source", {})
        settings = record.get("settings", {})
        entry = {
            "source": source.get("file"),
            "split": record.get("split"),
            "split_range": record.get("split_range"),
            "orientation": settings.get("orientation"),
            "seed": settings.get("seed"),
            "settings": {k: v for k, v in settings.items() if k not in ("orientation", "seed")},
        }
        key = json.dumps(entry, sort_keys=True)
        group = groups.setdefault(key, entry | {"files": 0, "slices": 0})
        group["files"] += 1
        group["slices"] += len(record.get("slice_indices", []))
    return list(groups.values())


def _simulation_record(path: Path) -> dict[str, Any] | None:
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return None
    import json

    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("simulation")
        return None if raw is None else json.loads(raw)
    except (OSError, ValueError, TypeError):
        return None
