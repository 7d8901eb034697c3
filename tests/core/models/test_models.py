"""Unrolled models: shapes, iterate/forward contract, registry, implicit CG backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mriviewer.core.errors import ConfigError
from mriviewer.core.models import MoDL, UnrolledPGD, build_model
from mriviewer.core.physics.masks import MaskSpec, make_mask


def _batch(h=24, w=20, coils=3, batch=2, dtype=torch.complex64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    maps = torch.randn(batch, coils, h, w, 2, generator=gen, dtype=real)
    maps = torch.view_as_complex(maps)
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(1, keepdim=True))
    image = torch.view_as_complex(torch.randn(batch, h, w, 2, generator=gen, dtype=real))
    mask = torch.from_numpy(
        np.stack(
            [make_mask(MaskSpec("random", 3.0, 0.2, seed=i), (h, w)).array for i in range(batch)]
        )
    )
    from mriviewer.core.physics.sense import SenseOperator

    kspace = SenseOperator(maps, mask).forward(image)
    return kspace.to(dtype), maps.to(dtype), mask


@pytest.mark.parametrize(
    "model",
    [
        MoDL(num_unrolls=3, features=8, shared=False, cg_iters=4),
        MoDL(num_unrolls=2, features=8, depth=3, shared=True, learn_mu=False),
        UnrolledPGD(num_unrolls=3, features=8, blocks=1),
    ],
    ids=["modl-unshared", "modl-shared-fixed-mu", "pgd"],
)
def test_iterate_and_forward_contract(model):
    kspace, maps, mask = _batch(h=23, w=17, coils=3)
    images = list(model.iterate(kspace, maps, mask))
    assert len(images) == model.num_unrolls
    for image in images:
        assert image.shape == (2, 23, 17) and image.dtype == torch.complex64
        assert torch.isfinite(torch.view_as_real(image)).all()
    torch.testing.assert_close(model(kspace, maps, mask), images[-1])
    # Continuing from the image after unroll 1 gives the same later images.
    tail = list(model.iterate(kspace, maps, mask, x0=images[0], start=1))
    torch.testing.assert_close(tail[-1], images[-1])
    # An empty range returns the starting image A^H y.
    aty = model.measurement(kspace, maps, mask).aty
    torch.testing.assert_close(model(kspace, maps, mask, stop=0), aty)
    with pytest.raises(IndexError):
        list(model.iterate(kspace, maps, mask, start=0, stop=model.num_unrolls + 1))


def test_config_round_trip_and_registry():
    for model in (MoDL(num_unrolls=4, features=6, shared=False), UnrolledPGD(2, features=5)):
        rebuilt = build_model(model.config())
        assert type(rebuilt) is type(model)
        assert rebuilt.config() == model.config()
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
            k: v.shape for k, v in model.state_dict().items()
        }
    with pytest.raises(ConfigError, match="unknown model 'unet'"):
        build_model({"name": "unet"})
    with pytest.raises(ConfigError, match="bad settings for model 'modl'"):
        build_model({"name": "modl", "colour": "blue"})
    with pytest.raises(ConfigError, match="cg_backward"):
        MoDL(cg_backward="magic")


def test_unroll_parameters_shared_and_unshared():
    unshared = MoDL(num_unrolls=3, features=4, shared=False)
    sets = [{id(p) for p in unshared.unroll_parameters(k)} for k in range(3)]
    assert not (sets[0] & sets[1]) and not (sets[1] & sets[2])
    assert set().union(*sets) == {id(p) for p in unshared.parameters()}
    shared = MoDL(num_unrolls=3, features=4, shared=True)
    assert {id(p) for p in shared.unroll_parameters(0)} == {
        id(p) for p in shared.unroll_parameters(2)
    }
    pgd = UnrolledPGD(num_unrolls=2, features=4, learn_step=False)
    assert all(p.dim() == 4 or p.dim() == 1 for p in pgd.unroll_parameters(1))


def test_mu_positive_and_fixed():
    model = MoDL(num_unrolls=2, features=4, mu_init=0.05, shared=False)
    assert model.mu(1).item() == pytest.approx(0.05, rel=1e-5)
    with torch.no_grad():
        model.mu_raw[1].fill_(-30.0)
    assert model.mu(1).item() > 0
    fixed = MoDL(num_unrolls=2, features=4, mu_init=4.0, learn_mu=False)
    assert fixed.mu(0).item() == pytest.approx(4.0)
    assert not any(p.dim() == 0 for p in fixed.parameters())


def test_implicit_cg_backward_equals_autograd_when_converged():
    kspace, maps, mask = _batch(h=12, w=10, coils=3, dtype=torch.complex128)
    settings = dict(num_unrolls=2, features=4, depth=3, shared=False, mu_init=0.5)
    auto = MoDL(**settings, cg_iters=200, cg_tol=1e-13, cg_backward="autograd").double()
    implicit = MoDL(**settings, cg_iters=200, cg_tol=1e-13, cg_backward="implicit").double()
    implicit.load_state_dict(auto.state_dict())
    target = torch.view_as_complex(torch.randn(2, 12, 10, 2, dtype=torch.float64))
    grads = []
    for model in (auto, implicit):
        model.zero_grad()
        loss = (model(kspace, maps, mask) - target).abs().mean()
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert len(grads[0]) == len(list(auto.parameters()))
    for g_auto, g_impl in zip(*grads, strict=True):
        torch.testing.assert_close(g_impl, g_auto, rtol=1e-6, atol=1e-9)
    # mu's gradient is part of it and is not trivially zero.
    assert auto.mu_raw[0].grad.abs().item() > 0


def test_cg_backward_differs_when_not_converged_is_still_finite():
    kspace, maps, mask = _batch(h=12, w=10, coils=3)
    model = MoDL(num_unrolls=2, features=4, cg_iters=2, cg_backward="implicit")
    loss = model(kspace, maps, mask).abs().mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_models_on_cuda():
    kspace, maps, mask = _batch()
    for model in (MoDL(num_unrolls=2, features=4, shared=False), UnrolledPGD(2, features=4)):
        model = model.cuda()
        out = model(kspace.cuda(), maps.cuda(), mask.cuda())
        assert out.is_cuda and out.shape == (2, 24, 20)
        out.abs().mean().backward()
