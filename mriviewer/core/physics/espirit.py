"""ESPIRiT coil maps (Uecker et al., MRM 2014) in torch, the same steps as sigpy's EspiritCalib
with the calibration products done once.

sigpy forms the per-pixel ``C x C`` matrix ``sum_k a_k a_k^H`` by transforming every one of the
``nk`` kernels of every coil to image space (``nk * C`` full-size FFTs) and accumulating ``nk``
outer products, then runs 100 power iterations. Here:

1. The kernels are the leading right singular vectors of the calibration (Hankel) matrix ``A``:
   the eigenvectors of its Gram ``A^H A`` (one matmul, one small ``eigh``), kept where
   ``sigma > thresh * sigma_max`` as in sigpy.
2. ``sum_k a_k a_k^H`` at pixel ``p`` is ``1/(kh kw) sum_D G_cd(D) exp(2 pi i D.(p - N/2) / N)``
   where ``G_cd(D) = sum_k sum_{q - q' = D} K_kcq conj(K_kdq')`` gathers the projection onto the
   kernel space by kernel offset ``D``: ``C (C + 1) / 2`` full-size FFTs (Hermitian in c, d)
   instead of ``nk * C`` FFTs and ``nk`` outer products.
3. A power iteration per pixel (``C^2`` products on whole images, no per-pixel matmul calls)
   that stops when the maps stop changing where they are kept (``|x_new - x_old| < tol``
   wherever the eigenvalue is above ``crop``), at most ``max_iter`` (sigpy: always 100); after
   24 iterations the few kept pixels still moving (near-equal leading eigenvalues, which the
   power iteration needs hundreds of iterations for) get their remaining iterations in closed
   form, ``V diag(lambda^k) V^H x`` from a dense ``eigh`` of their ``C x C`` matrix (BART's
   ``ecalib`` decomposes every pixel's matrix), so they end where sigpy's 100 iterations do.

The result is sigpy's up to float32 rounding and the power iteration's convergence: per pixel
``|<s_torch, s_sigpy>| / (|s_torch| |s_sigpy|)`` is 1 to within 1e-3 inside the support
(tests/core/physics/test_espirit.py); the first coil's phase is normalised as in sigpy. ``estimate_coil_maps``
uses it for ``espirit`` (square and rectangular calibration regions alike).
"""

from __future__ import annotations

import math

import numpy as np
import torch

ESPIRIT_KERNEL = 6


def _centre_crop(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """sigpy.resize's crop: start at ``N // 2 - n // 2`` on each axis."""
    (h, w), (n, m) = x.shape[-2:], shape
    y0, x0 = max(h // 2 - n // 2, 0), max(w // 2 - m // 2, 0)
    return x[..., y0 : y0 + n, x0 : x0 + m]


def kernel_gram(
    kspace: torch.Tensor, calib: tuple[int, int], kernel: tuple[int, int], thresh: float
) -> torch.Tensor:
    """``(C, C, 2 kh - 1, 2 kw - 1)`` kernel-space projection gathered by kernel offset."""
    num_coils = kspace.shape[0]
    kh, kw = kernel
    region = _centre_crop(kspace, calib).to(torch.complex128)
    blocks = region.unfold(1, kh, 1).unfold(2, kw, 1)  # (C, by, bx, kh, kw)
    mat = blocks.permute(1, 2, 0, 3, 4).reshape(-1, num_coils * kh * kw)
    gram = mat.conj().T @ mat  # A^H A: eigenvalues sigma^2, eigenvectors V
    eigvals, eigvecs = torch.linalg.eigh(gram)
    keep = eigvals > (thresh**2) * eigvals.max()
    v = eigvecs[:, keep]
    # kernels K_k = conj(v_k) (sigpy's rows of V^H); G(c q, d q') = sum_k K_kcq conj(K_kdq')
    proj = (v.conj() @ v.T).reshape(num_coils, kh, kw, num_coils, kh, kw)
    out = torch.zeros(num_coils, num_coils, 2 * kh - 1, 2 * kw - 1, dtype=proj.dtype)
    for qy in range(kh):  # offset D = q - q' lands at index D + k - 1
        for qx in range(kw):
            part = proj[:, :, :, :, qy, qx].permute(0, 3, 1, 2)  # (c, d, q_y, q_x)
            out[:, :, kh - 1 - qy : 2 * kh - 1 - qy, kw - 1 - qx : 2 * kw - 1 - qx] += part
    return out


def image_covariance(gram: torch.Tensor, shape: tuple[int, int], kernel: tuple[int, int]):
    """``(C, C, H, W)`` per-pixel ``sum_k a_k a_k^H`` (sigpy's AHA, scaled as sigpy does)."""
    from mriviewer.core.physics.fft import ifft2c

    num_coils = gram.shape[0]
    h, w = shape
    kh, kw = kernel
    dh, dw = gram.shape[-2:]
    rows, cols = torch.triu_indices(num_coils, num_coils)
    padded = torch.zeros(len(rows), h, w, dtype=torch.complex64)
    y0, x0 = h // 2 - (kh - 1), w // 2 - (kw - 1)
    # offsets that wrap past the image (a matrix smaller than the kernel span) alias, as in sigpy
    for i in range(dh):
        for j in range(dw):
            padded[:, (y0 + i) % h, (x0 + j) % w] += gram[rows, cols, i, j].to(torch.complex64)
    upper = ifft2c(padded) * (math.sqrt(h * w) / (kh * kw))
    aha = torch.empty(num_coils, num_coils, h, w, dtype=torch.complex64)
    aha[rows, cols] = upper
    aha[cols, rows] = upper.conj()
    return aha


def _matvec(aha: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per pixel ``aha @ x`` for ``(C, C, H, W)`` and ``(C, H, W)``."""
    y = aha[:, 0] * x[0]
    for d in range(1, aha.shape[1]):
        y.add_(aha[:, d] * x[d])
    return y


def _norm(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel 2-norm over the coil axis of ``(C, H, W)`` complex."""
    return torch.view_as_real(x).square().sum(dim=(0, -1)).sqrt()


def _remaining_iterations(
    aha: torch.Tensor, x: torch.Tensor, pixels: torch.Tensor, steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` more power iterations at the flat pixel indices ``pixels`` in closed form:
    ``A^steps x = V diag(lambda^steps) V^H x`` from a dense Hermitian eigendecomposition of each
    ``C x C`` matrix. Returns the normalised vectors ``(C, k)`` and ``|A v|`` ``(k,)``, what
    ``steps`` iterations of :func:`power_iteration` would give, to rounding. A smooth function
    of the data (unlike the leading eigenvector alone, which turns arbitrarily inside a cluster
    of nearly equal eigenvalues), so it is as reproducible as the iteration itself."""
    c = aha.shape[0]
    mats = aha.reshape(c, c, -1)[:, :, pixels].permute(2, 0, 1).to(torch.complex128)
    mats = 0.5 * (mats + mats.conj().transpose(1, 2))  # Hermitian to rounding
    values, vectors = torch.linalg.eigh(mats)
    top = values[:, -1:].clamp_min(torch.finfo(torch.float64).tiny)
    steps = max(int(steps), 1)
    gain = (values / top).clamp(-1.0, 1.0).pow(steps - 1)
    start = x.reshape(c, -1)[:, pixels].T.to(torch.complex128)  # (k, C)
    coefficients = (vectors.conj().transpose(1, 2) @ start.unsqueeze(-1)).squeeze(-1) * gain
    v = (vectors @ coefficients.unsqueeze(-1)).squeeze(-1)  # after steps - 1 iterations
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    y = (mats @ v.unsqueeze(-1)).squeeze(-1)  # the last one as the iteration does it
    eig = y.norm(dim=1)
    return (y / eig.clamp_min(1e-300).unsqueeze(1)).T.to(aha.dtype), eig.to(aha.real.dtype)


def power_iteration(
    aha: torch.Tensor,
    crop: float,
    max_iter: int,
    tol: float,
    check_every: int = 4,
    direct_after: int | None = 24,
    direct_fraction: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Leading eigenvector ``(C, H, W)`` and eigenvalue ``(H, W)`` per pixel from sigpy's start
    (all ones), and the number of iterations run: every ``check_every`` iterations, stop once
    the maps moved by less than ``tol`` wherever the eigenvalue is above ``crop``; at most
    ``max_iter``. Pixels whose two leading eigenvalues are close converge slowly (a few in a
    thousand may still move by 4e-3 per iteration after 100): after ``direct_after`` iterations,
    if at most ``direct_fraction`` of the kept pixels have not converged, those get their
    remaining ``max_iter - direct_after`` iterations in closed form from a dense
    eigendecomposition (:func:`_remaining_iterations`; ``None``: never). Either way every pixel
    ends where ``max_iter`` iterations (sigpy: always 100) or convergence would leave it.
    (Repeated squaring of the per-pixel matrices costs ``C^3`` per pixel against ``C^2`` per
    iteration: it only pays for fewer coils than ``2^s / s``.)"""
    tiny = torch.finfo(aha.real.dtype).tiny
    x = torch.ones(aha.shape[1:], dtype=aha.dtype)
    eig = torch.zeros(aha.shape[2:], dtype=aha.real.dtype)
    for done in range(1, max(int(max_iter), 1) + 1):
        y = _matvec(aha, x)
        eig = _norm(y)
        y.mul_(eig.clamp_min(tiny).reciprocal())
        direct = direct_after is not None and done == direct_after
        if done % check_every == 0 or done == max_iter or direct:
            kept = eig > crop
            moving = kept & (_norm(y - x) >= tol)
            left = int(moving.sum())
            if left == 0:
                return y, eig, done
            if direct and left <= direct_fraction * int(kept.sum()):
                pixels = moving.reshape(-1).nonzero().squeeze(1)
                vectors, values = _remaining_iterations(aha, y, pixels, int(max_iter) - done)
                y.reshape(y.shape[0], -1)[:, pixels] = vectors
                eig.reshape(-1)[pixels] = values
                return y, eig, done
        x = y
    return x, eig, done


def espirit_torch(
    kspace: np.ndarray,
    calib: int | tuple[int, int] = 24,
    kernel: int | tuple[int, int] | None = None,
    thresh: float = 0.02,
    crop: float = 0.95,
    max_iter: int = 100,
    tol: float = 1e-3,  # maps within 1e-3 of 100 fixed iterations (sigpy), about 2/3 the time
) -> np.ndarray:
    """``(C, H, W)`` complex64 ESPIRiT maps from ``(C, H, W)`` k-space (see the module doc).

    calib: a square width or ``(rows, cols)``; kernel: width (default 6, halved where the region
    is narrower than 12, as in :func:`mriviewer.core.physics.coils.espirit_maps`)."""
    ksp = torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64))
    rows, cols = (calib, calib) if isinstance(calib, (int, np.integer)) else calib
    if isinstance(kernel, (int, np.integer)):
        kernel = (int(kernel), int(kernel))
    if kernel is None:
        kernel = tuple(
            ESPIRIT_KERNEL if n >= 2 * ESPIRIT_KERNEL else max(2, n // 2) for n in (rows, cols)
        )
    with torch.no_grad():
        gram = kernel_gram(ksp, (int(rows), int(cols)), kernel, thresh)
        aha = image_covariance(gram, tuple(ksp.shape[-2:]), kernel)
        del gram
        maps, eig, _ = power_iteration(aha, crop, max_iter, tol)
        del aha
        first = maps[0]
        maps = maps * (first.conj() / first.abs().clamp_min(1e-30))
        maps = maps * (eig > crop)
    return maps.numpy().astype(np.complex64)
