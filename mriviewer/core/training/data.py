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
a fixed mask per case (``stable_seed(file name, slice, acceleration)``).
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
from mriviewer.core.physics.coils import estimate_coil_maps
from mriviewer.core.physics.fft import ifft2c_np, rss
from mriviewer.core.physics.masks import MaskSpec, make_mask, stable_seed

SUFFIXES = (".h5", ".hdf5", ".npy", ".npz", ".mat", ".cfl", ".dat")


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
    """Stack samples of the same shape into a :class:`Batch` (ConfigError if shapes differ)."""
    if not samples:
        raise ConfigError("cannot make a batch of no samples")
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
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError("data folder not found", self.folder)
        if not accelerations:
            raise ConfigError("at least one acceleration is needed")
        self.mask = mask
        self.accelerations = [float(a) for a in accelerations]
        for acc in self.accelerations:
            replace(mask, acceleration=acc)  # validates each acceleration
        self.coil_method = coil_method
        self.calib = calib
        self.slices: list[SliceRef] = []
        self._volumes: dict[Path, Any] = {}
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

    def __len__(self) -> int:
        return len(self.slices)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for model cards and run records."""
        return {
            "folder": os.path.normpath(self.folder),  # config-relative "a/../b" -> "b"
            "files": len(self._volumes),
            "slices": len(self.slices),
            "shapes": [list(shape) for shape in sorted({s.shape for s in self.slices})],
            "coil_method": self.coil_method,
            "normalisation": "k-space / 99th percentile of the zero-filled RSS magnitude "
            "(mriviewer.core.compare.kspace_scale of the masked data)",
            "target": "SENSE-combined fully sampled image",
        }

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
        maps = estimate_coil_maps(
            kspace,
            method=self.coil_method,
            calib=self._calib(self.mask, kspace.shape[-1]),
            source=f"{ref.path.resolve()}#slice{ref.index}",
            disk_cache=True,
        )
        return kspace, maps, np.asarray(reference, dtype=np.float32)

    def sample(self, i: int, seed: int, acceleration: float | None = None) -> Sample:
        """Slice ``i`` with a mask drawn from ``seed`` (acceleration drawn too unless given)."""
        ref = self.slices[i]
        if acceleration is None:
            rng = np.random.default_rng(seed)
            acceleration = self.accelerations[int(rng.integers(len(self.accelerations)))]
        spec = replace(self.mask, acceleration=float(acceleration), seed=int(seed) % 2**32)
        kspace, maps, reference = self._full_slice(ref)
        # zero-padded phase-encode columns (fastMRI knee) are outside the band, never sampled
        mask = make_mask(spec, kspace.shape[-2:], band=acquired_band(kspace).columns).array
        under = kspace * mask[None]
        scale = kspace_scale(under)
        target = (maps.conj() * ifft2c_np(kspace)).sum(0) / scale
        return Sample(
            kspace=(under / np.float32(scale)).astype(np.complex64),
            maps=maps.astype(np.complex64),
            mask=mask,
            target=target.astype(np.complex64),
            reference=reference,
            scale=float(scale),
            acceleration=float(acceleration),
            source=f"{ref.path.name}#slice{ref.index}",
        )

    def validation_sample(self, i: int, acceleration: float) -> Sample:
        """Slice ``i`` with its fixed validation mask at ``acceleration``."""
        ref = self.slices[i]
        return self.sample(i, stable_seed(ref.path.name, ref.index, acceleration), acceleration)

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
