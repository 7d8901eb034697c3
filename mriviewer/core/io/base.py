"""The typed k-space object every reader returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import KSpaceReadError

MIN_IMAGE_SIZE = 8


def check_layout(
    path: str | Path | None,
    num_coils: int,
    matrix: tuple[int, int],
    layout: str,
    hint: str,
) -> None:
    """Refuse an implausible reading of a file's layout with a one-line :class:`KSpaceReadError`.

    Every reader that infers the layout (array rank, dimension order, encodings, slices) calls
    this on its result. Plausible: both image dimensions ``matrix`` = ``(H, W)`` at least
    ``MIN_IMAGE_SIZE`` (8; so no dimension of size 1 is taken as an image axis) and fewer coils
    than either image dimension. ``layout`` names what the reader found (e.g. ``"(C, H, W) =
    (4, 1, 64)"``); ``hint`` says how to give another (e.g. ``"give the layout with --axes"``).
    """
    h, w = (int(n) for n in matrix)
    coils = int(num_coils)
    problems = []
    for name, size in (("H", h), ("W", w)):
        if size < MIN_IMAGE_SIZE:
            problems.append(
                f"image axis {name} has {size} sample{'s' if size != 1 else ''} "
                f"(at least {MIN_IMAGE_SIZE} needed)"
            )
    if not problems and coils >= min(h, w):
        problems.append(f"{coils} coils is not fewer than the image size {h} x {w}")
    if problems:
        raise KSpaceReadError(f"implausible layout {layout}: {'; '.join(problems)}; {hint}", path)


def _where_not_finite(arr: np.ndarray, index: int | None) -> str:
    """``"in slice 3, coil 1 (2 values)"``-style location of NaN/Inf values in ``(C, H, W)``."""
    bad = ~np.isfinite(arr)
    coils = [int(c) for c in np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))]
    where = [] if index is None else [f"slice {int(index)}"]
    if coils:
        shown = ", ".join(str(c) for c in coils[:8]) + (" ..." if len(coils) > 8 else "")
        where.append(f"coil{'s' if len(coils) > 1 else ''} {shown}")
    count = int(bad.sum())
    return f"in {', '.join(where)} ({count} value{'s' if count != 1 else ''})"


def validate_kspace(
    kspace: np.ndarray, path: str | Path | None, what: str = "k-space", index: int | None = None
) -> np.ndarray:
    """Check one slice of k-space is ``(C, H, W)`` complex, non-empty and finite; return complex64.

    ``index`` (the slice number) is named in the NaN/Inf message with the coils that hold them.
    Raises :class:`KSpaceReadError` naming ``path`` and the problem.
    """
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
        raise KSpaceReadError(
            f"{what} contains NaN or Inf values {_where_not_finite(arr, index)}", path
        )
    if not np.any(arr):
        raise KSpaceReadError(f"{what} is all zeros", path)
    return arr.astype(np.complex64, copy=False)


@dataclass
class KSpaceVolume:
    """A k-space volume opened by :func:`mriviewer.core.io.open_kspace`.

    Slices are read lazily through ``reader(k)`` (returns ``(C, H, W)`` complex64) and
    ``reference_reader(k)`` (returns an ``(h, w)`` float32 magnitude reference or None).
    ``kspace`` / ``reference`` give the current slice (``slice_index``).

    ``noise_covariance`` ``(C, C)`` complex (from the scan's own noise samples, or None): when
    set and ``prewhiten`` is true (the default), ``read_kspace`` returns prewhitened k-space
    (:func:`mriviewer.core.physics.noise.prewhiten`), so coil maps, references and every method
    downstream see the same whitened data. ``open_kspace(..., prewhiten=False)`` turns it off.
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
    noise_covariance: np.ndarray | None = field(default=None, repr=False)
    prewhiten: bool = True
    _cache: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.num_slices <= 0:
            raise KSpaceReadError("file holds no slices", self.path)
        if self.noise_covariance is not None:
            psi = np.asarray(self.noise_covariance)
            if psi.shape != (self.num_coils, self.num_coils):
                raise KSpaceReadError(
                    f"noise covariance is {' x '.join(str(n) for n in psi.shape)} but the "
                    f"k-space has {self.num_coils} coils",
                    self.path,
                )
        self.select(self.slice_index)

    @property
    def whitened(self) -> bool:
        """True when ``read_kspace`` returns prewhitened k-space (noise data and ``prewhiten``)."""
        return bool(self.prewhiten) and self.noise_covariance is not None

    def source_key(self, index: int | None = None) -> str:
        """Stable identity of a slice's data for caches: path, slice, encoding, prewhitening."""
        k = self.slice_index if index is None else self.select_index(index)
        key = f"{self.path}#slice{k}"
        if self.header.get("encoding"):
            key += f"#encoding{self.header['encoding']}"
        return key + ("#prewhitened" if self.whitened else "")

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
        key = ("k", k, self.whitened)
        if key not in self._cache:
            self._cache.clear()
            data = validate_kspace(self.reader(k), self.path, index=k)
            if self.whitened:
                from mriviewer.core.errors import ReconError
                from mriviewer.core.physics.noise import prewhiten

                try:
                    data = prewhiten(data, self.noise_covariance)
                except ReconError as exc:
                    raise KSpaceReadError(exc.problem, self.path) from exc
            self._cache[key] = data
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
            "noise": self.noise_info(),
        }

    def noise_info(self) -> dict[str, Any]:
        """JSON-ready noise facts: ``{"prewhitened": bool, "condition_number", ...}`` when the
        file has noise data, else ``{"prewhitened": False, "reason": "no noise data"}``."""
        if self.noise_covariance is None:
            unusable = self.header.get("noise_ignored")
            return {
                "prewhitened": False,
                "reason": "noise data unusable" if unusable else "no noise data",
            }
        from mriviewer.core.physics.noise import noise_summary

        out: dict[str, Any] = {"prewhitened": self.whitened}
        out.update(noise_summary(self.noise_covariance, self.header.get("noise_samples")))
        if not self.whitened:
            out["reason"] = "prewhitening turned off"
        return out
