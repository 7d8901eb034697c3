"""Coil noise covariance and prewhitening from a scan's own noise samples.

Receive coils pick up correlated thermal noise. With noise samples ``n`` ``(C, N)`` (MRD
acquisitions flagged ``ACQ_IS_NOISE_MEASUREMENT``, the TWIX noise-adjust scan) the covariance is
``Psi = n n^H / N`` (``C x C`` Hermitian). With ``Psi = L L^H`` (Cholesky), ``L^-1 y`` per k-space
point has identity noise covariance: the coils become virtual coils with independent noise of equal
level, which SENSE-type reconstructions assume (Pruessmann et al., MRM 42:952, 1999, eq. 13-15;
Hansen & Kellman, JMRI 41:573, 2015, "Image reconstruction: an overview for clinicians").
Coil maps estimated from the whitened k-space are the whitened maps ``L^-1 S``, so every method
downstream sees a consistent model.

Scale: :func:`prewhitening_matrix` returns ``W = sqrt(mean(diag Psi)) L^-1``, so the whitened noise
covariance is ``mean(diag Psi) * I``: the average noise variance per coil (and so the k-space's
overall level, PSNR references, regularisation weights) is preserved; only the coil correlation
and the unequal coil noise levels are removed.
"""

from __future__ import annotations

import numpy as np

from mriviewer.core.errors import ReconError


def estimate_noise_covariance(noise: np.ndarray) -> np.ndarray:
    """Coil noise covariance ``Psi = n n^H / N`` from noise samples.

    noise: complex ``(C, ...)``: coils first, any number of samples after (flattened).
    Returns ``(C, C)`` complex128 Hermitian. Raises :class:`ReconError` for non-complex, empty,
    non-finite input or fewer samples than coils (the covariance would be singular).
    """
    arr = np.asarray(noise)
    if arr.ndim < 2 or arr.size == 0:
        raise ReconError(f"noise samples must be (coils, samples), got shape {arr.shape}")
    if not np.iscomplexobj(arr):
        raise ReconError(f"noise samples must be complex, got dtype {arr.dtype}")
    flat = arr.reshape(arr.shape[0], -1).astype(np.complex128)
    coils, count = flat.shape
    if count < coils:
        raise ReconError(
            f"{count} noise samples per coil are too few for {coils} coils "
            "(the covariance would be singular)"
        )
    if not np.all(np.isfinite(flat)):
        raise ReconError("noise samples contain NaN or Inf")
    psi = flat @ flat.conj().T / count
    return 0.5 * (psi + psi.conj().T)


def prewhitening_matrix(covariance: np.ndarray) -> np.ndarray:
    """The ``(C, C)`` complex64 whitening matrix ``W = sqrt(mean(diag Psi)) L^-1``.

    ``L`` is the lower Cholesky factor of ``covariance`` ``Psi`` ``(C, C)`` Hermitian positive
    definite; ``W Psi W^H = mean(diag Psi) I``. Raises :class:`ReconError` when ``Psi`` is not
    square, not finite or not positive definite (e.g. a dead coil with zero noise).
    """
    psi = np.asarray(covariance, dtype=np.complex128)
    if psi.ndim != 2 or psi.shape[0] != psi.shape[1] or psi.shape[0] == 0:
        raise ReconError(f"noise covariance must be (coils, coils), got shape {psi.shape}")
    if not np.all(np.isfinite(psi)):
        raise ReconError("noise covariance contains NaN or Inf")
    try:
        chol = np.linalg.cholesky(psi)
    except np.linalg.LinAlgError as exc:
        raise ReconError(
            "noise covariance is not positive definite (a coil without noise?): cannot prewhiten"
        ) from exc
    level = float(np.mean(np.real(np.diag(psi))))
    inv = np.linalg.solve(chol, np.eye(psi.shape[0], dtype=np.complex128))
    return (np.sqrt(level) * inv).astype(np.complex64)


def prewhiten(kspace: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Whitened k-space ``W y`` per k-space point (``W`` from :func:`prewhitening_matrix`).

    kspace: complex ``(C, ...)`` (coils first, e.g. ``(C, H, W)``); covariance: ``(C, C)``.
    Returns complex64 of the same shape. Zero (unsampled) points stay zero. Raises
    :class:`ReconError` when the coil counts differ.
    """
    arr = np.asarray(kspace)
    psi = np.asarray(covariance)
    if arr.ndim < 1 or psi.ndim != 2 or arr.shape[0] != psi.shape[0]:
        raise ReconError(
            f"noise covariance is {psi.shape[0] if psi.ndim else 0} x "
            f"{psi.shape[-1] if psi.ndim else 0} but the k-space has "
            f"{arr.shape[0] if arr.ndim else 0} coils"
        )
    w = prewhitening_matrix(psi)
    flat = arr.reshape(arr.shape[0], -1).astype(np.complex64, copy=False)
    return (w @ flat).reshape(arr.shape).astype(np.complex64, copy=False)


def noise_summary(covariance: np.ndarray, samples: int | None = None) -> dict[str, object]:
    """JSON-ready facts about a noise covariance ``(C, C)``: condition number, per-coil noise
    standard deviation (``sqrt(diag Psi)``), largest off-diagonal correlation coefficient."""
    psi = np.asarray(covariance, dtype=np.complex128)
    std = np.sqrt(np.maximum(np.real(np.diag(psi)), 0.0))
    denom = np.outer(std, std)
    corr = np.abs(psi) / np.where(denom > 0, denom, 1.0)
    np.fill_diagonal(corr, 0.0)
    out: dict[str, object] = {
        "coils": int(psi.shape[0]),
        "condition_number": float(f"{np.linalg.cond(psi):.4g}"),
        "noise_std_per_coil": [float(f"{s:.4g}") for s in std],
        "max_correlation": float(f"{corr.max() if corr.size else 0.0:.4g}"),
    }
    if samples is not None:
        out["samples_per_coil"] = int(samples)
    return out
