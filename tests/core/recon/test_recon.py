"""Classical reconstructions as iteration streams: CG-SENSE and l1-wavelet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mriviewer.core.compare import classical_methods, evaluate_image, get_method, prepare_problem
from mriviewer.core.errors import ReconError
from mriviewer.core.physics import MaskSpec, SenseOperator, make_mask
from tests.conftest import phantom_case


@pytest.fixture(scope="module")
def phantom_problem():
    kspace, _, _ = phantom_case(64, 64, coils=8, seed=0)
    mask = make_mask(MaskSpec("random", 4.0, 0.08, seed=0), kspace.shape[-2:])
    return prepare_problem(kspace, mask)


def _final_psnr(name: str, problem, **settings) -> float:
    results = list(get_method(name, **settings).iterate(problem))
    return evaluate_image(problem, results[-1].image)["psnr"]


def test_registered_names():
    assert {"zero-filled", "cg-sense", "l1-wavelet"} <= set(classical_methods())
    assert get_method("cg-sense").name == "cg-sense"
    assert get_method("l1-wavelet").name == "l1-wavelet"


@pytest.mark.parametrize("name", ["cg-sense", "l1-wavelet"])
def test_beats_zero_filled_on_phantom(phantom_problem, name):
    zero = _final_psnr("zero-filled", phantom_problem)
    assert (
        _final_psnr(name, phantom_problem) > zero + 2.0
    )  # also checked on the demo: test_cli_eval


@pytest.mark.parametrize(
    ("name", "settings"),
    [("cg-sense", {"max_iter": 6, "tol": 0.0}), ("l1-wavelet", {"max_iter": 5})],
)
def test_iteration_stream_contract(phantom_problem, name, settings):
    results = list(get_method(name, **settings).iterate(phantom_problem))
    assert [r.iteration for r in results] == list(range(len(results)))
    assert len(results) == settings["max_iter"] + 1
    assert [r.final for r in results] == [False] * (len(results) - 1) + [True]
    elapsed = [r.elapsed for r in results]
    assert elapsed == sorted(elapsed)
    for r in results:
        assert r.method == name
        assert r.image.shape == phantom_problem.shape
        assert r.image.dtype == np.complex64
    # Iteration 0 is the SENSE zero-filled image A^H y.
    zero = list(get_method("zero-filled").iterate(phantom_problem))[0].image
    np.testing.assert_allclose(results[0].image, zero, atol=1e-5)
    # Iterations do change the image.
    assert not np.allclose(results[1].image, results[-1].image)


def test_cg_sense_solves_tikhonov_system(phantom_problem):
    lamda = 0.05
    results = list(
        get_method("cg-sense", lamda=lamda, max_iter=200, tol=1e-7).iterate(phantom_problem)
    )
    assert results[-1].final and results[-1].iteration < 200  # stopped on the tolerance
    op = SenseOperator(
        torch.from_numpy(phantom_problem.coil_maps)[None],
        torch.from_numpy(phantom_problem.mask)[None],
    )
    x = torch.from_numpy(results[-1].image)[None]
    rhs = op.adjoint(torch.from_numpy(phantom_problem.kspace)[None])
    residual = op.normal(x) + lamda * x - rhs
    assert float(residual.norm() / rhs.norm()) < 1e-5


def test_settings_and_aliases():
    assert get_method("cg-sense", **{"lambda": 0.02}).settings()["lamda"] == 0.02
    assert get_method("l1-wavelet", lamda=0.01, max_iter=3).settings() == {
        "lamda": 0.01,
        "max_iter": 3,
        "wavelet": "db4",
    }
    with pytest.raises(ReconError, match="unknown setting"):
        get_method("cg-sense", mu=1.0)
    with pytest.raises(ReconError, match="must be >= 0"):
        get_method("l1-wavelet", lamda=-1)
    with pytest.raises(ReconError, match="not a number"):
        get_method("cg-sense", max_iter="many")
    with pytest.raises(ReconError, match="unknown wavelet"):
        get_method("l1-wavelet", wavelet="nope")
    with pytest.raises(ReconError, match="unknown method"):
        get_method("sense-magic")


def test_cg_sense_auto_lamda_follows_the_mask_kind_and_is_reported():
    """lamda="auto" (the default): 0.003 with 1-D masks (as before), 0.015 with 2-D masks, where
    0.003 semi-converged (on the demo's middle slice, poisson 4x: 33.1 dB at iteration 5, 30.0
    at 15); the value used is in every iterate's extra and in the recorded settings."""
    from mriviewer.core.compare import final_record, prepare_from_volume, resolved_settings
    from mriviewer.core.io import open_kspace
    from mriviewer.core.physics.masks import MaskSpec, make_mask
    from mriviewer.core.recon.cg_sense import DEFAULT_LAMDA, DEFAULT_LAMDA_2D, is_1d_mask

    assert get_method("cg-sense").settings()["lamda"] == "auto"
    assert get_method("cg-sense", lamda="auto").lamda is None
    with pytest.raises(ReconError, match="not a number"):
        get_method("cg-sense", lamda="big")
    volume = open_kspace("demo")
    psnr = {}
    for kind in ("random", "poisson"):
        mask = make_mask(MaskSpec(kind, 4.0, 0.08, seed=0), volume.matrix)
        assert is_1d_mask(mask.array) == (kind == "random")
        problem = prepare_from_volume(volume, mask, volume.num_slices // 2)
        method = get_method("cg-sense")
        last = final_record(method, problem)
        expected = DEFAULT_LAMDA if kind == "random" else DEFAULT_LAMDA_2D
        assert last.extra["lamda"] == expected
        settings = resolved_settings(method.settings(), last.extra)
        assert settings["lamda"] == "auto" and settings["resolved"]["lamda"] == expected
        fixed = final_record(get_method("cg-sense", lamda=0.003), problem)
        psnr[kind] = (last.metrics["psnr"], fixed.metrics["psnr"])
    assert psnr["random"][0] == pytest.approx(psnr["random"][1], abs=1e-6)  # 1-D: unchanged
    assert psnr["poisson"][0] > psnr["poisson"][1] + 1.0, psnr


def test_needs_coil_maps(phantom_problem):
    from dataclasses import replace

    no_maps = replace(phantom_problem, coil_maps=None)
    for name in ("cg-sense", "l1-wavelet"):
        with pytest.raises(ReconError, match="coil maps"):
            next(iter(get_method(name).iterate(no_maps)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available here")
@pytest.mark.parametrize("name", ["cg-sense", "l1-wavelet"])
def test_cuda_matches_cpu(phantom_problem, name):
    cpu = list(get_method(name, max_iter=5).iterate(phantom_problem, device="cpu"))[-1].image
    gpu = list(get_method(name, max_iter=5).iterate(phantom_problem, device="cuda"))[-1].image
    np.testing.assert_allclose(gpu, cpu, atol=1e-4 * np.abs(cpu).max())
