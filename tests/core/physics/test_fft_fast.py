"""Shift-free centred FFTs and SENSE operator against the roll-based reference (issue 14)."""

import numpy as np
import pytest
import torch

import mriviewer.core.models.unrolled as unrolled
from mriviewer.core.models import build_model
from mriviewer.core.physics import SenseOperator, conjugate_gradient
from mriviewer.core.physics.fft import (
    fft2c,
    fft2c_np,
    fft2c_roll,
    fft2c_roll_np,
    ifft2c,
    ifft2c_np,
    ifft2c_roll,
    ifft2c_roll_np,
)

SIZES = [(16, 12), (15, 12), (16, 13), (7, 9), (6, 10), (2, 2), (1, 4)]


def _rand_c(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(
        torch.randn(*shape, generator=g, dtype=dtype), torch.randn(*shape, generator=g, dtype=dtype)
    )


class RollSense:
    """The previous SENSE operator: centred FFTs by torch.roll around every FFT."""

    def __init__(self, maps, mask):
        self.coil_maps = maps if maps.dim() == 4 else maps[None]
        mask = mask[None] if mask.dim() == 2 else mask
        self.mask = (mask[:, None] if mask.dim() == 3 else mask).to(self.coil_maps.real.dtype)

    def forward(self, x):
        return self.mask * fft2c_roll(self.coil_maps * x.unsqueeze(-3))

    def adjoint(self, y):
        return (self.coil_maps.conj() * ifft2c_roll(self.mask * y)).sum(dim=-3)

    def normal(self, x):
        k = fft2c_roll(self.coil_maps * x.unsqueeze(-3))
        return (self.coil_maps.conj() * ifft2c_roll(self.mask * k)).sum(dim=-3)

    __call__ = forward


def _close(a, b, tol=1e-5):
    scale = max(float(b.abs().max()), 1e-12)
    return float((a - b).abs().max()) / scale < tol


@pytest.mark.parametrize("n", [2, 4, 6, 8, 10, 16])
def test_checkerboard_identity_derivation(n):
    """For even N: fftshift(fft(ifftshift(x))) = (-1)^(N/2) c fft(c x), c = (-1)^n (1-D check);
    the same for the inverse FFT."""
    x = np.random.default_rng(n).standard_normal(n) + 1j * np.random.default_rng(
        n + 1
    ).standard_normal(n)
    c = (-1.0) ** np.arange(n)
    for f in (np.fft.fft, np.fft.ifft):
        lhs = np.fft.fftshift(f(np.fft.ifftshift(x)))
        assert np.allclose(lhs, (-1.0) ** (n // 2) * c * f(c * x))


@pytest.mark.parametrize("shape", SIZES)
def test_fft_matches_roll_reference(shape):
    x = _rand_c(3, *shape, seed=1)
    for fast, ref in ((fft2c, fft2c_roll), (ifft2c, ifft2c_roll)):
        assert _close(fast(x), ref(x))
        assert fast(x).dtype == ref(x).dtype
    x64 = _rand_c(2, *shape, seed=2, dtype=torch.float64)
    assert torch.allclose(fft2c(x64), fft2c_roll(x64), atol=1e-12)
    xn = x.numpy()
    for fast, ref in ((fft2c_np, fft2c_roll_np), (ifft2c_np, ifft2c_roll_np)):
        got, want = fast(xn), ref(xn)
        assert got.dtype == want.dtype
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    real = np.random.default_rng(0).standard_normal(shape)
    assert np.allclose(fft2c_np(real), fft2c_roll_np(real), atol=1e-12)


def test_fft_gradient_matches_reference():
    for shape in ((16, 12), (15, 13)):
        x = _rand_c(2, *shape, seed=3).requires_grad_()
        w = _rand_c(2, *shape, seed=4)
        (fft2c(x) * w).real.sum().backward()
        g_fast = x.grad.clone()
        x.grad = None
        (fft2c_roll(x) * w).real.sum().backward()
        assert _close(g_fast, x.grad)


@pytest.mark.parametrize("shape", [(16, 12), (15, 12), (16, 13), (9, 7)])
def test_sense_matches_roll_reference(shape):
    maps = _rand_c(2, 4, *shape, seed=5)
    mask = torch.rand(2, *shape, generator=torch.Generator().manual_seed(6)) > 0.5
    op, ref = SenseOperator(maps, mask), RollSense(maps, mask)
    x = _rand_c(2, *shape, seed=7)
    y = _rand_c(2, 4, *shape, seed=8)
    assert _close(op.forward(x), ref.forward(x))
    assert _close(op.adjoint(y), ref.adjoint(y))
    assert _close(op.normal(x), ref.normal(x))
    with torch.no_grad():  # the in-place path
        assert _close(op.normal(x), ref.normal(x))
    mu = 0.05
    a = conjugate_gradient(op.normal, op.adjoint(y), mu, max_iter=8, tol=0)
    b = conjugate_gradient(ref.normal, ref.adjoint(y), mu, max_iter=8, tol=0)
    assert _close(a, b, 1e-4)


@pytest.mark.parametrize("shape", [(16, 12), (15, 13)])
@pytest.mark.parametrize("name", ["modl", "pgd"])
def test_unrolled_forward_and_gradient_match_roll_reference(shape, name, monkeypatch):
    torch.manual_seed(0)
    config = {"name": name, "num_unrolls": 2, "features": 4}
    if name == "modl":
        config.update(depth=3, cg_iters=4)
    else:
        config.update(blocks=1)
    model = build_model(config)
    maps = _rand_c(2, 3, *shape, seed=9)
    maps = maps / (maps.abs() ** 2).sum(1, keepdim=True).sqrt()
    mask = torch.rand(2, *shape, generator=torch.Generator().manual_seed(10)) > 0.5
    kspace = mask[:, None] * _rand_c(2, 3, *shape, seed=11)

    def run():
        model.zero_grad()
        out = model(kspace, maps, mask)
        out.abs().pow(2).mean().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    out_fast, grads_fast = run()
    monkeypatch.setattr(unrolled, "SenseOperator", RollSense)
    out_ref, grads_ref = run()
    assert _close(out_fast, out_ref, 1e-4)
    for g_fast, g_ref in zip(grads_fast, grads_ref, strict=True):
        assert _close(g_fast, g_ref, 1e-3)


@pytest.mark.parametrize("shape", [(16, 12), (15, 13)])
def test_sense_gradient_wrt_maps_matches_reference(shape):
    """Maps that need gradients take the recorded path; same gradients as the reference."""
    maps = _rand_c(1, 3, *shape, seed=12)
    mask = torch.rand(1, *shape, generator=torch.Generator().manual_seed(13)) > 0.5
    x = _rand_c(1, *shape, seed=14)
    grads = []
    for cls in (SenseOperator, RollSense):
        m = maps.clone().requires_grad_()
        op = cls(m, mask)
        (op.normal(x).abs().sum() + op.adjoint(op.forward(x)).real.sum()).backward()
        grads.append(m.grad)
    assert _close(grads[0], grads[1], 1e-4)


def test_one_dimensional_masks_use_one_dimensional_ffts():
    maps = _rand_c(2, 3, 16, 12, seed=15)
    columns = torch.rand(2, 1, 12, generator=torch.Generator().manual_seed(16)) > 0.5
    rows = torch.rand(2, 16, 1, generator=torch.Generator().manual_seed(17)) > 0.5
    x = _rand_c(2, 16, 12, seed=18)
    for mask, dims in (
        (columns.expand(2, 16, 12), (-1,)),
        (rows.expand(2, 16, 12), (-2,)),
        (torch.rand(2, 16, 12) > 0.5, (-2, -1)),
    ):
        op = SenseOperator(maps, mask)
        assert op.normal_dims == dims
        assert _close(op.normal(x), RollSense(maps, mask).normal(x))


def test_normal_operator_broadcasts_batches():
    """Maps of batch 1 with a mask of batch 2 (work arrays of the broadcast shape)."""
    maps = _rand_c(1, 3, 16, 12, seed=19)
    mask = torch.rand(2, 16, 12, generator=torch.Generator().manual_seed(20)) > 0.5
    x = _rand_c(1, 16, 12, seed=21)
    got = SenseOperator(maps, mask).normal(x)
    want = RollSense(maps, mask).normal(x)
    assert got.shape == want.shape == (2, 16, 12)
    assert _close(got, want)
    x2 = _rand_c(2, 16, 12, seed=22)  # a new shape in the same operator
    assert _close(SenseOperator(maps, mask).normal(x2), RollSense(maps, mask).normal(x2))
