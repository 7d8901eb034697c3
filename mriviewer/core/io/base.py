"""The typed k-space object every reader returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import KSpaceReadError


def validate_kspace(
    kspace: np.ndarray, path: str | Path | None, what: str = "k-space"
) -> np.ndarray:
    """Check one slice of k-space is ``(C, H, W)`` complex, non-empty and finite; return complex64."""
    arr = np.asarray(kspace)
    if not np.iscomplexobj(arr):
        raise KSpaceReadError(
            f"{what} is not complex (dtype {arr.dtype}); expected complex data", path
        )
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise KSpaceReadError(f"{what} slice has rank {arr.ndim}, expected (coils, H, W)", path)
    if arr.size == 0 or min(arr.shape) == 0:
        raise KSpaceReadError(f"{what} is empty (shape {arr.shape})", path)
    if not np.all(np.isfinite(arr)):
        raise KSpaceReadError(f"{what} contains NaN or Inf values", path)
    if not np.any(arr):
        raise KSpaceReadError(f"{what} is all zeros", path)
    return arr.astype(np.complex64, copy=False)


@dataclass
class KSpaceVolume:
    """A k-space volume opened by :func:`mriviewer.core.io.open_kspace`.

    Slices are read lazily through ``reader(k)`` (returns ``(C, H, W)`` complex64) and
    ``reference_reader(k)`` (returns an ``(h, w)`` float32 magnitude reference or None).
    ``kspace`` / ``reference`` give the current slice (``slice_index``).
    """

    path: Path
    format: str
    num_slices: int
    num_coils: int
    matrix: tuple[int, int]
    reader: Callable[[int], np.ndarray] = field(repr=False)
    reference_reader: Callable[[int], np.ndarray | None] | None = field(default=None, repr=False)
    header: dict[str, Any] = field(default_factory=dict)
    slice_index: int = 0
    _cache: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.num_slices <= 0:
            raise KSpaceReadError("file holds no slices", self.path)
        self.select(self.slice_index)

    @property
    def has_reference(self) -> bool:
        return self.reference_reader is not None

    def select(self, index: int) -> KSpaceVolume:
        """Make ``index`` the current slice (checked); returns self."""
        self.slice_index = self.select_index(index)
        return self

    def read_kspace(self, index: int | None = None) -> np.ndarray:
        """``(C, H, W)`` complex64 k-space of slice ``index`` (default: the current slice)."""
        k = self.slice_index if index is None else self.select_index(index)
        key = ("k", k)
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = validate_kspace(self.reader(k), self.path)
        return self._cache[key]

    def read_reference(self, index: int | None = None) -> np.ndarray | None:
        """``(h, w)`` float32 reference magnitude of slice ``index``, or None if absent."""
        if self.reference_reader is None:
            return None
        k = self.slice_index if index is None else self.select_index(index)
        ref = self.reference_reader(k)
        if ref is None:
            return None
        ref = np.asarray(ref)
        if ref.ndim != 2 or ref.size == 0:
            raise KSpaceReadError(
                f"reference image has shape {ref.shape}, expected (h, w)", self.path
            )
        if not np.all(np.isfinite(ref)):
            raise KSpaceReadError("reference image contains NaN or Inf", self.path)
        return np.abs(ref).astype(np.float32, copy=False)

    def select_index(self, index: int) -> int:
        """Check ``index`` against the slice count; returns it as a non-negative int."""
        if not -self.num_slices <= int(index) < self.num_slices:
            raise KSpaceReadError(
                f"slice {index} out of range: the file has {self.num_slices} slice(s)", self.path
            )
        return int(index) % self.num_slices

    @property
    def kspace(self) -> np.ndarray:
        """Current slice's ``(C, H, W)`` complex64 k-space."""
        return self.read_kspace()

    @property
    def reference(self) -> np.ndarray | None:
        """Current slice's reference magnitude ``(h, w)`` or None."""
        return self.read_reference()

    @property
    def recon_matrix(self) -> tuple[int, int]:
        """Reconstruction matrix (crop size for metrics) from the header, else the k-space matrix."""
        rm = self.header.get("recon_matrix")
        return (int(rm[0]), int(rm[1])) if rm else self.matrix

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (what ``mriviewer info --json`` prints)."""
        return {
            "path": str(self.path),
            "format": self.format,
            "slices": self.num_slices,
            "coils": self.num_coils,
            "matrix": list(self.matrix),
            "recon_matrix": list(self.recon_matrix),
            "acquisition": self.header.get("acquisition"),
            "reference": self.has_reference,
            "header": {k: v for k, v in self.header.items() if k not in ("xml",)},
        }
