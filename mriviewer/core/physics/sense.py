"""Multi-coil SENSE operator ``A = M F S`` on batches.

Shapes: images ``(B, H, W)`` complex, coil maps ``(B, C, H, W)`` complex, masks ``(B, H, W)`` or
``(B, 1, H, W)`` real/bool (a 1-D Cartesian mask is simply constant along one axis), k-space
``(B, C, H, W)`` complex. Unbatched inputs (no leading B) are accepted and handled the same.
"""

from __future__ import annotations

import torch

from mriviewer.core.physics.fft import fft2c, ifft2c


class SenseOperator:
    """Forward ``A x = M F (S x)``, adjoint ``A^H y = sum_c conj(S_c) F^-1 (M y_c)``, normal ``A^H A``.

    The mask is stored as a float tensor broadcastable to ``(B, C, H, W)``.
    """

    def __init__(self, coil_maps: torch.Tensor, mask: torch.Tensor) -> None:
        if coil_maps.dim() == 3:
            coil_maps = coil_maps.unsqueeze(0)
        if coil_maps.dim() != 4:
            raise ValueError(f"coil maps must be (B, C, H, W), got {tuple(coil_maps.shape)}")
        if mask.dim() == 2:
            mask = mask.unsqueeze(0)
        if mask.dim() == 3:
            mask = mask.unsqueeze(1)
        if mask.shape[-2:] != coil_maps.shape[-2:]:
            raise ValueError(
                f"mask shape {tuple(mask.shape[-2:])} does not match image shape "
                f"{tuple(coil_maps.shape[-2:])}"
            )
        self.coil_maps = coil_maps
        self.mask = mask.to(device=coil_maps.device, dtype=coil_maps.real.dtype)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(B, H, W)`` shape of the images this operator acts on."""
        b, _, h, w = self.coil_maps.shape
        return (b, h, w)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` image to ``(B, C, H, W)`` masked k-space."""
        return self.mask * fft2c(self.coil_maps * image.unsqueeze(-3))

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` k-space to ``(B, H, W)`` coil-combined image."""
        return (self.coil_maps.conj() * ifft2c(self.mask * kspace)).sum(dim=-3)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` for ``(B, H, W)`` images (mask applied once: M^H M = M for a 0/1 mask)."""
        coil_k = fft2c(self.coil_maps * image.unsqueeze(-3))
        return (self.coil_maps.conj() * ifft2c(self.mask * coil_k)).sum(dim=-3)

    __call__ = forward
