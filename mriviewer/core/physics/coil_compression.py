"""Coil compression: C physical coils -> V virtual coils by an SVD over the coil axis.

The k-space samples of all coils form a ``(C, N)`` matrix ``Y``. Its left singular vectors
``U`` (``Y = U s V^H``) order the coil combinations by energy; the compression matrix is
``A = U[:, :V]^H`` (``(V, C)``) and the virtual-coil k-space is ``A Y``. Since ``A`` acts on the
coil axis only, it commutes with the Fourier transform and with any sampling mask: compressing
undersampled data equals undersampling compressed data, and the coil maps of the virtual coils
are ``A S``. White noise of equal variance per coil stays white (``A`` has orthonormal rows).
Every per-coil cost (FFTs, coil products of the SENSE operator) falls by ``C / V``.

References: M. Buehrer, K. P. Pruessmann, P. Boesiger, S. Kozerke, "Array compression for MRI
with large coil arrays", MRM 57:1131-1139 (2007); F. Huang, S. Vijayakumar, Y. Li, S. Hertel,
G. R. Duensing, "A software channel compression technique for faster reconstruction with many
channels", MRI 26:133-141 (2008) (the SVD / PCA form used here).

``calib``: the rows and columns of the centred block whose samples form ``Y`` (the
calibration region, which every mask samples); None uses all samples of the given k-space.
"""

from __future__ import annotations

import numpy as np

from mriviewer.core.errors import ConfigError


def compression_matrix(
    kspace: np.ndarray, virtual_coils: int, calib: tuple[int, int] | int | None = None
) -> np.ndarray:
    """``(V, C)`` complex64 matrix with orthonormal rows: the V strongest coil combinations of
    ``(C, H, W)`` k-space (samples of the centred ``calib`` block, or all samples)."""
    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise ConfigError(f"coil compression needs (C, H, W) k-space, got {kspace.shape}")
    coils = kspace.shape[0]
    v = int(virtual_coils)
    if not 1 <= v <= coils:
        raise ConfigError(f"virtual coils must be between 1 and the coil count {coils}, got {v}")
    data = kspace
    if calib is not None:
        rows, cols = (calib, calib) if isinstance(calib, int) else calib
        h, w = kspace.shape[-2:]
        rows, cols = min(int(rows), h), min(int(cols), w)
        top, left = h // 2 - rows // 2, w // 2 - cols // 2
        data = kspace[:, top : top + rows, left : left + cols]
    matrix = data.reshape(coils, -1).astype(np.complex128)
    # U of the thin SVD of (C, N) = eigenvectors of the C x C coil covariance Y Y^H
    u, _, _ = np.linalg.svd(matrix, full_matrices=False)
    return np.ascontiguousarray(u[:, :v].conj().T).astype(np.complex64)


def apply_compression(data: np.ndarray, matrix: np.ndarray, axis: int = 0) -> np.ndarray:
    """``(C, ...)`` k-space, coil images or coil maps -> ``(V, ...)`` virtual coils (the coils
    on ``axis``, e.g. 1 for a ``(T, C, H, W)`` cine series)."""
    data = np.asarray(data)
    out = np.moveaxis(np.tensordot(matrix, data, axes=([1], [axis])), 0, axis)
    return out.astype(np.result_type(data.dtype, np.complex64))


def compress_coils(
    kspace: np.ndarray, virtual_coils: int, calib: tuple[int, int] | int | None = None
) -> np.ndarray:
    """``(C, H, W)`` k-space -> ``(V, H, W)`` virtual-coil k-space (see the module docstring)."""
    return apply_compression(kspace, compression_matrix(kspace, virtual_coils, calib))


def retained_energy(kspace: np.ndarray, virtual_coils: int) -> float:
    """Fraction of the k-space energy the first ``virtual_coils`` virtual coils keep."""
    matrix = np.asarray(kspace).reshape(kspace.shape[0], -1)
    s = np.linalg.svd(matrix, compute_uv=False) ** 2
    return float(s[: int(virtual_coils)].sum() / s.sum())


__all__ = ["apply_compression", "compress_coils", "compression_matrix", "retained_energy"]
