"""Centred, orthonormal 2-D FFTs over the last two axes (fastMRI convention) and RSS."""

from __future__ import annotations

import numpy as np
import torch

_DIMS = (-2, -1)


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT: ``fftshift(fft2(ifftshift(x), norm="ortho"))``.

    image: complex tensor ``(..., H, W)``; returns k-space of the same shape.
    """
    shifted = torch.fft.ifftshift(image, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two axes, ``(..., H, W)`` complex."""
    shifted = torch.fft.ifftshift(kspace, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def fft2c_np(image: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`fft2c` for ``(..., H, W)`` complex arrays."""
    shifted = np.fft.ifftshift(image, axes=_DIMS)
    return np.fft.fftshift(np.fft.fft2(shifted, axes=_DIMS, norm="ortho"), axes=_DIMS)


def ifft2c_np(kspace: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`ifft2c` for ``(..., H, W)`` complex arrays."""
    shifted = np.fft.ifftshift(kspace, axes=_DIMS)
    return np.fft.fftshift(np.fft.ifft2(shifted, axes=_DIMS, norm="ortho"), axes=_DIMS)


def rss(coil_images: torch.Tensor | np.ndarray, coil_axis: int = -3):
    """Root sum of squares over the coil axis: ``sqrt(sum_c |x_c|^2)``.

    coil_images: ``(..., C, H, W)``; returns ``(..., H, W)`` real, same library as the input.
    """
    if isinstance(coil_images, torch.Tensor):
        return torch.sqrt((coil_images.abs() ** 2).sum(dim=coil_axis))
    return np.sqrt((np.abs(coil_images) ** 2).sum(axis=coil_axis))
