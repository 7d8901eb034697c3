"""Centred, orthonormal 2-D FFTs over the last two axes (fastMRI convention) and RSS.

A centred FFT is ``fftshift(fft2(ifftshift(x)))``. The shifts are ``torch.roll`` / ``np.roll``
copies (two per axis and shift), which cost more than the FFT itself on a CPU. For an even
length N, with ``c_n = (-1)^n``::

    fftshift(fft(ifftshift(x)))[k] = (-1)^(N/2) * c_k * fft(c * x)[k]

(ifftshift is a roll by N/2, i.e. the phase ``exp(i pi m) = (-1)^m`` on the spectrum; fftshift
evaluates that spectrum at ``k + N/2``, i.e. the input is modulated by ``(-1)^n``). The same
holds for the inverse FFT. So on even axes the centred FFT is one FFT between two products with
the checkerboard ``c = (-1)^(y+x)`` (global sign ``(-1)^(H/2 + W/2)`` folded into the second);
odd axes keep the rolls. :func:`fft2c_roll` / :func:`ifft2c_roll` (and the ``_np`` twins) are
the plain roll-based definitions, kept as the reference the fast ones are tested against.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

_DIMS = (-2, -1)


def _split_axes(shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The last two axes split into (even-length, odd-length) axes."""
    even = tuple(d for d in _DIMS if shape[d] % 2 == 0)
    odd = tuple(d for d in _DIMS if shape[d] % 2 == 1)
    return even, odd


@lru_cache(maxsize=64)
def _checker_np(h: int, w: int, dtype_str: str, signed: bool) -> np.ndarray:
    """``(-1)^(y+x)`` over the even ones of ``(h, w)`` (an odd axis gets length 1), read-only.

    ``signed`` folds in the global sign ``(-1)^(sum of N/2 over the even axes)``."""
    rows = (-1.0) ** np.arange(h) if h % 2 == 0 else np.ones(1)
    cols = (-1.0) ** np.arange(w) if w % 2 == 0 else np.ones(1)
    board = rows[:, None] * cols[None, :]
    if signed:
        half = (h // 2 if h % 2 == 0 else 0) + (w // 2 if w % 2 == 0 else 0)
        board = board * (-1.0) ** half
    out = board.astype(np.dtype(dtype_str))
    out.flags.writeable = False
    return out


_TORCH_CHECKERS: dict[tuple, torch.Tensor] = {}


def checkerboard(
    h: int, w: int, dtype: torch.dtype, device: torch.device | str = "cpu", signed: bool = False
) -> torch.Tensor:
    """Cached ``(H', W')`` tensor ``(-1)^(y+x)`` on the even axes of ``(h, w)`` (odd -> length 1).

    ``signed`` multiplies by ``(-1)^(H/2 + W/2)`` (even axes only). Used by :func:`fft2c`,
    :func:`ifft2c` and :class:`~mriviewer.core.physics.sense.SenseOperator`."""
    device = torch.device(device)
    key = (h, w, dtype, device, signed)
    board = _TORCH_CHECKERS.get(key)
    if board is None:
        base = torch.from_numpy(np.array(_checker_np(h, w, "float64", signed)))
        board = base.to(dtype=dtype, device=device)
        if len(_TORCH_CHECKERS) > 64:
            _TORCH_CHECKERS.clear()
        _TORCH_CHECKERS[key] = board
    return board


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.complex64)


def _centred(x: torch.Tensor, inverse: bool) -> torch.Tensor:
    transform = torch.fft.ifft2 if inverse else torch.fft.fft2
    h, w = x.shape[-2:]
    even, odd = _split_axes(x.shape)
    if odd:
        x = torch.fft.ifftshift(x, dim=odd)
    if even:
        dtype = _complex_dtype(x.dtype)
        x = x * checkerboard(h, w, dtype, x.device)
        out = transform(x, dim=_DIMS, norm="ortho") * checkerboard(
            h, w, dtype, x.device, signed=True
        )
    else:
        out = transform(x, dim=_DIMS, norm="ortho")
    if odd:
        out = torch.fft.fftshift(out, dim=odd)
    return out


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT: ``fftshift(fft2(ifftshift(x), norm="ortho"))``.

    image: complex tensor ``(..., H, W)``; returns k-space of the same shape. Even axes use the
    checkerboard modulation (no array copies), odd axes the rolls."""
    return _centred(image, inverse=False)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two axes, ``(..., H, W)`` complex."""
    return _centred(kspace, inverse=True)


def fft2c_roll(image: torch.Tensor) -> torch.Tensor:
    """Reference :func:`fft2c` by ``torch.roll`` shifts (the definition; slower)."""
    shifted = torch.fft.ifftshift(image, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c_roll(kspace: torch.Tensor) -> torch.Tensor:
    """Reference :func:`ifft2c` by ``torch.roll`` shifts (the definition; slower)."""
    shifted = torch.fft.ifftshift(kspace, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def _centred_np(x: np.ndarray, inverse: bool) -> np.ndarray:
    transform = np.fft.ifft2 if inverse else np.fft.fft2
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"need (..., H, W) arrays, got shape {x.shape}")
    h, w = x.shape[-2:]
    even, odd = _split_axes(x.shape)
    if odd:
        x = np.fft.ifftshift(x, axes=odd)
    if not even:
        out = transform(x, axes=_DIMS, norm="ortho")
    else:
        dtype = np.result_type(x.dtype, np.complex64)
        out = transform(x * _checker_np(h, w, np.dtype(dtype).str, False), axes=_DIMS, norm="ortho")
        out *= _checker_np(h, w, out.dtype.str, True)
    if odd:
        out = np.fft.fftshift(out, axes=odd)
    return out


def fft2c_np(image: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`fft2c` for ``(..., H, W)`` complex arrays."""
    return _centred_np(image, inverse=False)


def ifft2c_np(kspace: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`ifft2c` for ``(..., H, W)`` complex arrays."""
    return _centred_np(kspace, inverse=True)


def fft2c_roll_np(image: np.ndarray) -> np.ndarray:
    """Reference :func:`fft2c_np` by ``np.fft.fftshift`` / ``ifftshift`` (the definition)."""
    shifted = np.fft.ifftshift(image, axes=_DIMS)
    return np.fft.fftshift(np.fft.fft2(shifted, axes=_DIMS, norm="ortho"), axes=_DIMS)


def ifft2c_roll_np(kspace: np.ndarray) -> np.ndarray:
    """Reference :func:`ifft2c_np` by ``np.fft.fftshift`` / ``ifftshift`` (the definition)."""
    shifted = np.fft.ifftshift(kspace, axes=_DIMS)
    return np.fft.fftshift(np.fft.ifft2(shifted, axes=_DIMS, norm="ortho"), axes=_DIMS)


def rss(coil_images: torch.Tensor | np.ndarray, coil_axis: int = -3):
    """Root sum of squares over the coil axis: ``sqrt(sum_c |x_c|^2)``.

    coil_images: ``(..., C, H, W)``; returns ``(..., H, W)`` real, same library as the input.
    """
    if isinstance(coil_images, torch.Tensor):
        return torch.sqrt((coil_images.abs() ** 2).sum(dim=coil_axis))
    return np.sqrt((np.abs(coil_images) ** 2).sum(axis=coil_axis))
