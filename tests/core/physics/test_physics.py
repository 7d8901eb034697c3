import numpy as np
import pytest
import torch

from mriviewer.core.physics import (
    MaskSpec,
    SenseOperator,
    conjugate_gradient,
    fft2c,
    ifft2c,
    make_mask,
    stable_seed,
)
from mriviewer.core.physics.fft import fft2c_np, ifft2c_np


def _rand_c(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))


def test_fft_is_orthonormal_and_centred():
    x = _rand_c(3, 16, 12)
    k = fft2c(x)
    assert torch.allclose(ifft2c(k), x, atol=1e-5)
    assert torch.allclose(k.norm(), x.norm(), rtol=1e-5)
    delta = torch.zeros(16, 12, dtype=torch.complex64)
    delta[8, 6] = 1.0  # centre pixel -> flat, real spectrum
    assert torch.allclose(fft2c(delta).abs(), torch.full((16, 12), 1 / np.sqrt(192)), atol=1e-6)
    assert np.allclose(fft2c_np(x.numpy()), k.numpy(), atol=1e-5)
    assert np.allclose(ifft2c_np(k.numpy()), x.numpy(), atol=1e-5)


def test_sense_adjoint():
    maps = _rand_c(2, 4, 16, 12, seed=1)
    mask = torch.rand(2, 16, 12) > 0.5
    op = SenseOperator(maps, mask)
    x = _rand_c(2, 16, 12, seed=2)
    y = _rand_c(2, 4, 16, 12, seed=3)
    lhs = (op.forward(x).conj() * y).sum()
    rhs = (x.conj() * op.adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-3)
    assert torch.allclose(op.normal(x), op.adjoint(op.forward(x)), atol=1e-4)


def _dense_normal(op, shape):
    n = shape[0] * shape[1]
    cols = []
    for i in range(n):
        e = torch.zeros(n, dtype=torch.complex64)
        e[i] = 1
        cols.append(op.normal(e.reshape(1, *shape))[0].reshape(-1))
    return torch.stack(cols, dim=1)


def test_cg_matches_dense_solve():
    shape = (6, 5)
    maps = _rand_c(1, 3, *shape, seed=4)
    mask = torch.rand(1, *shape) > 0.4
    op = SenseOperator(maps, mask)
    b = _rand_c(1, *shape, seed=5)
    mu = 0.3
    x = conjugate_gradient(op.normal, b, mu=mu, max_iter=200, tol=1e-10)
    a = _dense_normal(op, shape) + mu * torch.eye(30, dtype=torch.complex64)
    ref = torch.linalg.solve(a, b.reshape(-1))
    assert torch.allclose(x.reshape(-1), ref, atol=1e-4)


def test_cg_batch_equals_samples_one_by_one():
    maps = _rand_c(3, 4, 16, 16, seed=6)
    masks = torch.stack([torch.rand(16, 16) > p for p in (0.2, 0.6, 0.8)])
    op = SenseOperator(maps, masks)
    b = _rand_c(3, 16, 16, seed=7)
    mu = torch.tensor([0.05, 0.5, 2.0])
    batched = conjugate_gradient(op.normal, b, mu=mu, max_iter=15, tol=1e-5)
    for i in range(3):
        single = SenseOperator(maps[i : i + 1], masks[i : i + 1])
        one = conjugate_gradient(single.normal, b[i : i + 1], mu=mu[i], max_iter=15, tol=1e-5)
        assert torch.allclose(batched[i], one[0], atol=1e-5)


@pytest.mark.parametrize("kind", ["random", "equispaced", "poisson", "gaussian"])
def test_masks_reproducible_and_near_target(kind):
    spec = MaskSpec(kind=kind, acceleration=4, center_fraction=0.08, calib=16, seed=3)
    a = make_mask(spec, (96, 128))
    b = make_mask(spec, (96, 128))
    assert np.array_equal(a.array, b.array)
    assert a.array.dtype == bool and a.shape == (96, 128)
    assert 2.5 < a.achieved_acceleration < 6.0
    assert a.array[48, 64]  # centre always sampled


def test_random_mask_follows_fastmri_rule():
    spec = MaskSpec("random", acceleration=4, center_fraction=0.08, seed=0)
    mask = make_mask(spec, (10, 368))
    line = mask.array[0]
    assert (mask.array == line[None]).all()
    num_low = round(368 * 0.08)
    pad = (368 - num_low + 1) // 2
    assert line[pad : pad + num_low].all()
    rates = [
        make_mask(MaskSpec("random", 4, 0.08, seed=s), (1, 368)).array.mean() for s in range(200)
    ]
    assert abs(np.mean(rates) - 0.25) < 0.01


def test_stable_seed_is_stable():
    assert stable_seed("file1000001.h5", 3) == stable_seed("file1000001.h5", 3)
    assert stable_seed("file1000001.h5", 3) != stable_seed("file1000001.h5", 4)
