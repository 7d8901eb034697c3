"""Cine (2-D + time) training data: one sample is one cine series with a k-t mask.

:class:`CineDataset` is the cine twin of :class:`mriviewer.core.training.data.SliceDataset`
(same interface: ``sample``, ``validation_sample``, ``epoch_batches``, ``describe``), selected by
``dynamic = true`` in ``train.toml``. Every cine HDF5 file in the folder (``mriviewer simulate
--dynamic`` output, :func:`mriviewer.core.io.cine.open_cine`) contributes all its cine slices.

A sample is prepared exactly as ``eval`` prepares a cine case
(:func:`mriviewer.core.cine.prepare_cine_problem`): a ``(T, H, W)`` k-t mask
(:func:`mriviewer.core.physics.kt_masks.make_kt_mask`: R per frame, a calibration band of
``round(W * center_fraction)`` columns shared by all frames, the other columns changing from
frame to frame) undersamples the fully sampled ``(T, C, H, W)`` k-space, which is divided by the
99th percentile of the zero-filled RSS frames; coil maps come from the time-averaged
undersampled data (ESPIRiT on the fully sampled centre of the frames' union). The target is the
coil-combined fully sampled series ``S^H F^-1 y / scale`` ``(T, H, W)``; metrics use the file's
RSS reference per frame. Training masks are drawn per sample and step; validation masks are
fixed per case (``stable_seed(file name, slice, acceleration)``).

The model sees one series per call with the frames on the batch axis (kspace and maps
``(T, C, H, W)``, mask ``(T, H, W)``), so the batch size must be 1.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import ConfigError, MriViewerError
from mriviewer.core.physics.masks import MaskSpec, stable_seed
from mriviewer.core.training.data import (
    SUFFIXES,
    Sample,
    SliceRef,
    acceleration_settings,
    portable_folder,
    simulation_sources,
)


class CineDataset:
    """All cine slices of the cine files in ``folder`` (sorted by file name, then slice).

    mask: the :class:`MaskSpec` template (kind ``random`` or ``equispaced``, centre fraction);
    accelerations: R per frame (training draws one per sample); coil_method: coil-map
    estimation on the time-averaged calibration data.
    """

    def __init__(
        self,
        folder: str | Path,
        mask: MaskSpec,
        accelerations: list[float] | tuple[float, ...],
        coil_method: str = "espirit",
        max_slices: int | None = None,
        center_fractions: list[float] | tuple[float, ...] | None = None,
        virtual_coils: int | None = None,
    ) -> None:
        from mriviewer.core.io.cine import is_cine, open_cine
        from mriviewer.core.physics.kt_masks import KT_KINDS

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError("data folder not found", self.folder)
        self.accelerations, self.center_fractions = acceleration_settings(
            accelerations, center_fractions
        )
        if mask.kind not in KT_KINDS:
            raise ConfigError(
                f"cine training takes a k-t mask: [mask] kind = {' or '.join(KT_KINDS)}, "
                f"not {mask.kind!r}"
            )
        self.mask = mask
        self.coil_method = coil_method
        #: compress series with more coils to this many virtual coils (one SVD per series)
        self.virtual_coils = None if virtual_coils is None else int(virtual_coils)
        self.slices: list[SliceRef] = []
        self._volumes: dict[Path, Any] = {}
        self._sources: list[dict[str, Any]] | None = None
        skipped = 0
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in SUFFIXES)
        for path in files:
            if not is_cine(path):
                skipped += 1
                continue
            volume = open_cine(path)
            self._volumes[path] = volume
            shape = (volume.num_frames, volume.num_coils, *volume.matrix)
            self.slices.extend(SliceRef(path, k, shape) for k in range(volume.num_slices))
        #: files in the folder that are not cine series (2-D k-space): left out of the set
        self.skipped = skipped
        if max_slices is not None:
            self.slices = self.slices[: int(max_slices)]
        if not self.slices:
            extra = f" ({skipped} non-cine file(s) skipped)" if skipped else ""
            raise ConfigError(
                "no cine series found (expected cine HDF5 files from simulate --dynamic)" + extra,
                self.folder,
            )

    def _center_fraction(self, acceleration: float) -> float:
        return self.center_fractions.get(float(acceleration), self.mask.center_fraction)

    def __len__(self) -> int:
        return len(self.slices)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for model cards and run records."""
        out: dict[str, Any] = {
            "folder": portable_folder(self.folder),
            "dynamic": True,
            "files": len(self._volumes),
            "series": len(self.slices),
            "shapes (T, C, H, W)": [list(s) for s in sorted({r.shape for r in self.slices})],
            "coil_method": self.coil_method,
            "coil_maps": "from the time-averaged undersampled k-space (fully sampled centre of "
            "the union of the frames' masks), as mriviewer.core.cine.prepare_cine_problem",
            "normalisation": "k-space / 99th percentile of the zero-filled RSS frames",
            "target": "SENSE-combined fully sampled series (T, H, W)",
            "mask": "k-t (make_kt_mask): a new mask per frame around a shared calibration band",
        }
        if self.virtual_coils is not None:
            out["virtual_coils"] = (
                f"series with more than {self.virtual_coils} coils compressed to "
                f"{self.virtual_coils} virtual coils (SVD over the coils of every frame's samples)"
            )
        if self.center_fractions:
            out["center_fractions"] = {f"{a:g}": c for a, c in self.center_fractions.items()}
        if self._sources is None:
            self._sources = simulation_sources(self._volumes)
        if self._sources:
            out["sources"] = self._sources
        return out

    def sample(
        self, i: int, seed: int, acceleration: float | None = None, crop: bool = True
    ) -> Sample:
        """Series ``i`` with a k-t mask drawn from ``seed`` (acceleration drawn unless given).

        Sample fields: kspace ``(T, C, H, W)`` (C = the virtual coils when compressed), maps
        ``(C, H, W)``, mask ``(T, H, W)``, target
        ``(T, H, W)``, reference ``(T, h, w)``. ``crop`` is accepted and ignored (no crops)."""
        from mriviewer.core.cine import prepare_cine_problem
        from mriviewer.core.physics.coil_compression import apply_compression
        from mriviewer.core.physics.fft import ifft2c_np
        from mriviewer.core.physics.kt_masks import make_kt_mask

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
        volume = self._volumes[ref.path]
        try:
            kspace = volume.read_kspace(ref.index)
            reference = volume.read_reference(ref.index)
        except MriViewerError:
            raise
        except Exception as exc:  # noqa: BLE001 - reader internals must not leak
            raise ConfigError(f"cannot read cine slice {ref.index} ({exc})", ref.path) from exc
        mask = make_kt_mask(spec, volume.num_frames, volume.matrix)
        problem = prepare_cine_problem(
            kspace,
            mask,
            reference=reference,
            recon_matrix=volume.recon_matrix,
            coil_method=self.coil_method,
            virtual_coils=self.virtual_coils,
        )
        if problem.coil_maps is None:
            raise ConfigError(f"cine slice {ref.index}: " + "; ".join(problem.warnings), ref.path)
        maps = problem.coil_maps.astype(np.complex64)
        if problem.compression is not None:  # the fully sampled data in the same virtual coils
            kspace = apply_compression(kspace, problem.compression, axis=1)
        target = (maps.conj()[None] * ifft2c_np(kspace)).sum(1) / problem.scale
        return Sample(
            kspace=problem.kspace.astype(np.complex64),
            maps=maps,
            mask=mask,
            target=target.astype(np.complex64),
            reference=np.asarray(problem.reference, dtype=np.float32),
            scale=float(problem.scale),
            acceleration=float(acceleration),
            source=f"{ref.path.name}#slice{ref.index}",
        )

    def validation_sample(self, i: int, acceleration: float) -> Sample:
        """Series ``i`` with its fixed validation k-t mask at ``acceleration``."""
        ref = self.slices[i]
        return self.sample(i, stable_seed(ref.path.name, ref.index, acceleration), acceleration)

    def epoch_batches(self, epoch: int, batch_size: int, seed: int) -> list[list[int]]:
        """One series per batch, shuffled by ``(seed, epoch)`` (deterministic)."""
        if int(batch_size) != 1:
            raise ConfigError(
                "cine training takes batch_size = 1 (one series per step: its frames are the "
                "model's batch axis)"
            )
        rng = np.random.default_rng(stable_seed("epoch", seed, epoch))
        return [[int(j)] for j in rng.permutation(len(self.slices))]

    def steps_per_epoch(self, batch_size: int) -> int:
        """Number of batches per epoch (one series each)."""
        return len(self.epoch_batches(0, batch_size, 0))
