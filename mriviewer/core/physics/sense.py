"""Multi-coil SENSE operator ``A = M F S`` on batches.

Shapes: images ``(B, H, W)`` complex, coil maps ``(B, C, H, W)`` complex, masks ``(B, H, W)`` or
``(B, 1, H, W)`` real/bool (a 1-D Cartesian mask is simply constant along one axis), k-space
``(B, C, H, W)`` complex. Unbatched inputs (no leading B) are accepted and handled the same.

No array is shifted per application: the normal operator ``F^H M F`` of the centred FFT ``F``
equals ``F0^H ifftshift(M) F0`` with the plain FFT ``F0`` (a circular shift of the image
commutes with the circulant ``F0^H M' F0``), so the mask is stored once in FFT order; forward
and adjoint use :func:`~mriviewer.core.physics.fft.fft2c`'s checkerboard modulation (applied to
the ``(B, H, W)`` image, not to every coil) on even sizes and the rolls on odd ones.
"""

from __future__ import annotations

import torch

from mriviewer.core.physics.fft import checkerboard, fft2c, ifft2c


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
        h, w = coil_maps.shape[-2:]
        #: the mask in FFT (uncentred) order, for the normal operator
        self.mask_fft = torch.fft.ifftshift(self.mask, dim=(-2, -1))
        #: axes the normal operator transforms: a mask constant along an axis (a 1-D Cartesian
        #: mask is constant along the readout) commutes with the unitary FFT along it, so
        #: ``F^H M F`` needs 1-D FFTs along the other axis only (exact, half the flops)
        self.normal_dims: tuple[int, ...] = (-2, -1)
        with torch.no_grad():
            if h > 1 and bool((self.mask_fft == self.mask_fft[..., :1, :]).all()):
                self.normal_dims = (-1,)
                self.mask_fft = self.mask_fft[..., :1, :]
            elif w > 1 and bool((self.mask_fft == self.mask_fft[..., :1]).all()):
                self.normal_dims = (-2,)
                self.mask_fft = self.mask_fft[..., :1]
        self._even = h % 2 == 0 and w % 2 == 0
        self._maps_conj: torch.Tensor | None = None
        if self._even:
            dtype = coil_maps.dtype if coil_maps.is_complex() else torch.complex64
            #: (-1)^(y+x) (image side) and the signed mask (-1)^(H/2+W/2) (-1)^(y+x) M (k side)
            self._board = checkerboard(h, w, dtype, coil_maps.device)
            self._mask_signed = self.mask * checkerboard(
                h, w, self.mask.dtype, coil_maps.device, signed=True
            )

    def _conj_maps(self) -> torch.Tensor:
        """``conj(S)`` materialised once (a product with a lazy conj view copies it each time)."""
        maps = self.coil_maps
        if maps.requires_grad and torch.is_grad_enabled():
            return maps.conj()
        if self._maps_conj is None:
            self._maps_conj = maps.detach().conj().resolve_conj()
        return self._maps_conj

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(B, H, W)`` shape of the images this operator acts on."""
        b, _, h, w = self.coil_maps.shape
        return (b, h, w)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` image to ``(B, C, H, W)`` masked k-space."""
        return self._apply("forward", image)

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` k-space to ``(B, H, W)`` coil-combined image."""
        return self._apply("adjoint", kspace)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` for ``(B, H, W)`` images (mask applied once: M^H M = M for a 0/1 mask)."""
        return self._apply("normal", image)

    # -- kernels -------------------------------------------------------------------------
    def _apply(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        """Dispatch: the kernels run without autograd; when only ``x`` needs gradients they are
        wrapped in :class:`_LinearOp` (backward = the adjoint kernel), and when the maps or the
        mask need gradients too the ops are recorded one by one."""
        if not torch.is_grad_enabled():
            return self._kernel(kind, x)
        if self.coil_maps.requires_grad or self.mask.requires_grad:
            return self._recorded(kind, x)
        if x.requires_grad:
            return _LinearOp.apply(x, self, kind)
        return self._kernel(kind, x)

    def _kernel(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        """``kind`` in forward/adjoint/normal on fresh arrays, products in place."""
        with torch.no_grad():
            if kind == "normal":
                dims = self.normal_dims
                coil_k = torch.fft.fftn(self.coil_maps * x.unsqueeze(-3), dim=dims, norm="ortho")
                coil_images = torch.fft.ifftn(_mul_(coil_k, self.mask_fft), dim=dims, norm="ortho")
                return _mul_(coil_images, self._conj_maps()).sum(dim=-3)
            if kind == "forward":
                if self._even:
                    coil_images = self.coil_maps * (x * self._board).unsqueeze(-3)
                    return _mul_(torch.fft.fft2(coil_images, norm="ortho"), self._mask_signed)
                return _mul_(fft2c(self.coil_maps * x.unsqueeze(-3)), self.mask)
            if self._even:
                coil_images = torch.fft.ifft2(self._mask_signed * x, norm="ortho")
                return _mul_(_mul_(coil_images, self._conj_maps()).sum(dim=-3), self._board)
            return _mul_(ifft2c(self.mask * x), self._conj_maps()).sum(dim=-3)

    def _recorded(self, kind: str, x: torch.Tensor) -> torch.Tensor:
        """The same maps with every op recorded by autograd (maps or mask need gradients)."""
        maps = self.coil_maps
        if kind == "normal":
            dims = self.normal_dims
            coil_k = torch.fft.fftn(maps * x.unsqueeze(-3), dim=dims, norm="ortho")
            coil_images = torch.fft.ifftn(coil_k * self.mask_fft, dim=dims, norm="ortho")
            return (maps.conj() * coil_images).sum(dim=-3)
        if kind == "forward":
            return self.mask * fft2c(maps * x.unsqueeze(-3))
        return (maps.conj() * ifft2c(self.mask * x)).sum(dim=-3)

    __call__ = forward


_ADJOINT = {"normal": "normal", "forward": "adjoint", "adjoint": "forward"}


class _LinearOp(torch.autograd.Function):
    """A linear SENSE map whose backward is its adjoint (``normal`` is self-adjoint): nothing is
    saved for backward and no intermediate enters the autograd graph."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, op: SenseOperator, kind: str) -> torch.Tensor:  # type: ignore[override]
        ctx.op = op
        ctx.kind = kind
        return op._kernel(kind, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return ctx.op._apply(_ADJOINT[ctx.kind], grad), None, None


def _mul_(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b`` written into ``a`` when the result fits it (``a`` is a fresh temporary)."""
    if torch.broadcast_shapes(a.shape, b.shape) == a.shape and torch.result_type(a, b) == a.dtype:
        return a.mul_(b)
    return a * b


class ReferenceSenseOperator:
    """The SENSE operator as it was before issue 14: ``torch.roll`` shifts around every FFT.

    Same interface and results as :class:`SenseOperator` (to float32 precision); kept for tests
    and for ``mriviewer bench recon --before``."""

    def __init__(self, coil_maps: torch.Tensor, mask: torch.Tensor) -> None:
        from mriviewer.core.physics.fft import fft2c_roll, ifft2c_roll

        self._fft, self._ifft = fft2c_roll, ifft2c_roll
        self.coil_maps = coil_maps if coil_maps.dim() == 4 else coil_maps.unsqueeze(0)
        mask = mask.unsqueeze(0) if mask.dim() == 2 else mask
        mask = mask.unsqueeze(1) if mask.dim() == 3 else mask
        self.mask = mask.to(device=self.coil_maps.device, dtype=self.coil_maps.real.dtype)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        b, _, h, w = self.coil_maps.shape
        return (b, h, w)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.mask * self._fft(self.coil_maps * image.unsqueeze(-3))

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        return (self.coil_maps.conj() * self._ifft(self.mask * kspace)).sum(dim=-3)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        coil_k = self._fft(self.coil_maps * image.unsqueeze(-3))
        return (self.coil_maps.conj() * self._ifft(self.mask * coil_k)).sum(dim=-3)

    __call__ = forward
