"""CNN denoisers for unrolled networks. Complex ``(B, H, W)`` images pass as 2 real channels.

- :class:`ResidualCNN`: MoDL's denoiser, ``x + f(x)`` with ``depth`` 3x3 convs
  (2 -> F -> ... -> F -> 2), ReLU between them, no batch norm.
- :class:`ResBlockDenoiser`: the unrolled-PGD denoiser, ``x + out(blocks(in(x)))`` where each block
  is ``h + conv(relu(conv(relu(h))))``, no normalisation.

``dims`` selects the convolution (same classes, same layer layout, one setting):

- ``"2d"`` (default): 3x3 convs per image; the batch axis holds independent images.
- ``"3d"``: 3x3x3 convs over ``(t, y, x)`` for cine; the batch axis of the ``(T, H, W)`` input is
  the time axis of ONE series (channels ``(1, 2, T, H, W)``, zero padding in time).
- ``"2+1d"``: every 3x3x3 conv is factorised into a 1x3x3 spatial conv (to ``features``
  channels) followed by a 3x1x1 temporal conv (Tran et al. CVPR 2018, without the intermediate
  ReLU so the pair stays one linear layer); also cine, input as for ``"3d"``.
"""

from __future__ import annotations

import torch
from torch import nn


def complex_to_channels(image: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` complex -> ``(B, 2, H, W)`` real (real and imaginary channels).

    The result is in channels-last memory order, which is the complex image's own layout (no
    copy for a contiguous image); the convs then run channels-last too (1.6x faster forward +
    backward on a CPU than NCHW at 16 features, same results)."""
    channels = torch.view_as_real(image).permute(0, 3, 1, 2)
    return channels.contiguous(memory_format=torch.channels_last)


def channels_to_complex(channels: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` real -> ``(B, H, W)`` complex (no copy for channels-last input)."""
    channels = channels.contiguous(memory_format=torch.channels_last)
    return torch.view_as_complex(channels.permute(0, 2, 3, 1))


DIMS = ("2d", "3d", "2+1d")


def check_dims(dims: str) -> str:
    """``dims`` if it is one of :data:`DIMS`, else ValueError naming them."""
    if dims not in DIMS:
        raise ValueError(f"denoiser dims must be one of {', '.join(DIMS)}, got {dims!r}")
    return dims


class SpatioTemporalConv(nn.Sequential):
    """(2+1)-D conv: ``Conv3d(c_in, c_mid, (1, 3, 3))`` then ``Conv3d(c_mid, c_out, (3, 1, 1))``.

    ``c_mid`` is the larger of the two channel counts (so the 2 -> F and F -> 2 layers keep F
    intermediate channels)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        mid = max(c_in, c_out)
        super().__init__(
            nn.Conv3d(c_in, mid, (1, 3, 3), padding=(0, 1, 1)),
            nn.Conv3d(mid, c_out, (3, 1, 1), padding=(1, 0, 0)),
        )


def make_conv(c_in: int, c_out: int, dims: str = "2d") -> nn.Module:
    """A 'same'-padded 3x3 conv (``2d``), 3x3x3 conv (``3d``) or (2+1)-D pair (``2+1d``)."""
    check_dims(dims)
    if dims == "2d":
        return nn.Conv2d(c_in, c_out, 3, padding=1)
    if dims == "3d":
        return nn.Conv3d(c_in, c_out, 3, padding=1)
    return SpatioTemporalConv(c_in, c_out)


def _last_linear(module: nn.Module) -> nn.Module:
    """The conv whose output leaves ``module`` last (the temporal conv of a (2+1)-D pair)."""
    return module[-1] if isinstance(module, SpatioTemporalConv) else module


def to_channels(image: torch.Tensor, dims: str) -> torch.Tensor:
    """Complex image -> real channels: ``(B, 2, H, W)`` for ``2d``; for ``3d``/``2+1d`` the
    ``(T, H, W)`` series -> ``(1, 2, T, H, W)``."""
    if dims == "2d":
        return complex_to_channels(image)
    if image.dim() != 3:
        raise ValueError(f"a {dims} denoiser takes one (T, H, W) series, got {tuple(image.shape)}")
    return torch.view_as_real(image).permute(3, 0, 1, 2).unsqueeze(0)


def from_channels(channels: torch.Tensor, dims: str) -> torch.Tensor:
    """Inverse of :func:`to_channels`."""
    if dims == "2d":
        return channels_to_complex(channels)
    return torch.view_as_complex(channels[0].permute(1, 2, 3, 0).contiguous())


class ResidualCNN(nn.Module):
    """MoDL denoiser: ``depth`` 3x3 conv layers with ``features`` channels, residual, no BN.

    forward: ``(B, H, W)`` complex -> ``(B, H, W)`` complex (``dims`` ``3d``/``2+1d``: one
    ``(T, H, W)`` series, convs over time too).
    """

    def __init__(self, features: int = 64, depth: int = 5, dims: str = "2d") -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if depth < 2:
            raise ValueError(f"denoiser depth must be >= 2, got {depth}")
        if features < 1:
            raise ValueError(f"denoiser features must be >= 1, got {features}")
        layers: list[nn.Module] = []
        channels = [2] + [features] * (depth - 1) + [2]
        for i in range(depth):
            layers.append(make_conv(channels[i], channels[i + 1], dims))
            if i < depth - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        last = _last_linear(layers[-1])
        with torch.no_grad():  # start close to the identity (x + small f(x))
            last.weight.mul_(0.1)
            last.bias.zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = to_channels(image, self.dims)
        return from_channels(x + self.net(x), self.dims)


class ResBlock(nn.Module):
    """``h + conv(relu(conv(relu(h))))`` with 3x3 convs of ``features`` channels (``dims``)."""

    def __init__(self, features: int, dims: str = "2d") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            make_conv(features, features, dims),
            nn.ReLU(),
            make_conv(features, features, dims),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


class ResBlockDenoiser(nn.Module):
    """Unrolled-PGD denoiser: 2 -> F conv, ``blocks`` residual blocks, F -> 2 conv, plus ``x``.

    forward: ``(B, H, W)`` complex -> ``(B, H, W)`` complex (``dims`` as :class:`ResidualCNN`).
    """

    def __init__(self, features: int = 64, blocks: int = 2, dims: str = "2d") -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if blocks < 1:
            raise ValueError(f"number of residual blocks must be >= 1, got {blocks}")
        if features < 1:
            raise ValueError(f"denoiser features must be >= 1, got {features}")
        self.head = make_conv(2, features, dims)
        self.blocks = nn.Sequential(*[ResBlock(features, dims) for _ in range(blocks)])
        self.tail = make_conv(features, 2, dims)
        last = _last_linear(self.tail)
        with torch.no_grad():  # start close to the identity: PGD then begins as a gradient step
            last.weight.mul_(0.1)
            last.bias.zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = to_channels(image, self.dims)
        return from_channels(x + self.tail(self.blocks(self.head(x))), self.dims)
