"""Spatio-temporal unrolled networks on cine data: denoisers, cine dataset, every strategy,
``model:PATH`` as a cine method, and ``bench train`` / ``bench plan`` on a 2-D + t problem.

Tiny sizes (6 frames, 4 coils, 24 x 24, 4 features, N = 2) so the file runs in seconds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mriviewer.core.errors import ConfigError
from mriviewer.core.io.cine import write_cine
from mriviewer.core.models import build_model
from mriviewer.core.physics.fft import fft2c_np
from mriviewer.core.training import load_config, train

FRAMES, COILS, SIZE = 6, 4, 24
COMMON = {
    "dynamic": True,
    "model.name": "modl",
    "model.num_unrolls": 2,
    "model.features": 4,
    "model.cg_iters": 3,
    "model.denoiser": "3d",
    "model.shared": False,
    "coil_method": "lowres",
    "mask.kind": "random",
    "mask.center_fraction": 0.17,  # 4 of 24 columns shared by every frame
    "accelerations": [4.0],
    "device": "cpu",
    "progress": False,
    "seed": 1,
    "steps": 2,
    "val_every": 2,
}


def cine_series(seed: int) -> np.ndarray:
    """``(T, C, H, W)`` k-space of an ellipse phantom whose inner ellipse beats, plus noise."""
    import sigpy.mri

    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, SIZE), np.linspace(-1, 1, SIZE), indexing="ij")
    maps = sigpy.mri.birdcage_maps((COILS, SIZE, SIZE)).astype(np.complex64)
    frames = []
    for t in range(FRAMES):
        r = 1 + 0.2 * np.cos(2 * np.pi * t / FRAMES)
        image = (((yy / 0.8) ** 2 + (xx / 0.6) ** 2) < 1).astype(np.float32)
        image += 0.5 * (((yy - 0.1) / (0.3 * r)) ** 2 + ((xx + 0.1) / (0.25 * r)) ** 2 < 1)
        frames.append(fft2c_np(maps * (image * np.exp(0.5j * yy))))
    kspace = np.stack(frames)
    noise = rng.normal(size=kspace.shape) + 1j * rng.normal(size=kspace.shape)
    return (kspace + 0.01 * noise).astype(np.complex64)


@pytest.fixture(scope="module")
def cine_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cine-train")
    write_cine(root / "train" / "a.h5", np.stack([cine_series(0), cine_series(1)]))
    write_cine(root / "val" / "b.h5", cine_series(2))
    return root


def _config(cine_data: Path, out: Path, **extra):
    return load_config(
        None,
        COMMON
        | {"train_dir": str(cine_data / "train"), "val_dir": str(cine_data / "val")}
        | {"output": str(out)}
        | extra,
    )


@pytest.mark.parametrize("denoiser", ["3d", "2+1d"])
@pytest.mark.parametrize("name", ["modl", "pgd"])
def test_spatio_temporal_denoisers_keep_shapes_and_mix_frames(name, denoiser):
    torch.manual_seed(0)
    model = build_model({"name": name, "num_unrolls": 1, "features": 4, "denoiser": denoiser})
    assert model.dynamic and model.config()["denoiser"] == denoiser
    rebuilt = build_model(model.config())
    assert rebuilt.config() == model.config()
    rebuilt.load_state_dict(model.state_dict())  # same layers and shapes
    den = model.denoisers[0]
    x = torch.randn(FRAMES, SIZE, SIZE, dtype=torch.complex64)
    y = den(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    x2 = x.clone()
    x2[0] += 1.0  # a change in frame 0 reaches frame 1 through the temporal convolution
    assert not torch.allclose(den(x2)[1], y[1])
    two_d = build_model({"name": name, "num_unrolls": 1, "features": 4}).denoisers[0]
    assert torch.equal(two_d(x2)[1], two_d(x)[1])  # a 2-D denoiser keeps frames apart


def test_two_d_models_are_unchanged_and_bad_denoisers_are_refused():
    model = build_model({"name": "modl", "num_unrolls": 1, "features": 4})
    assert not model.dynamic and "denoiser" not in model.config()
    with pytest.raises(ConfigError, match="denoiser must be one of"):
        build_model({"name": "modl", "num_unrolls": 1, "denoiser": "4d"})


@pytest.mark.parametrize("strategy", ["e2e", "checkpoint", "gleam"])
def test_every_strategy_trains_on_cine_with_a_3d_model(cine_data, tmp_path, strategy):
    config = _config(cine_data, tmp_path / strategy, strategy=strategy)
    result = train(config)
    assert result.steps == 2 and math.isfinite(result.last_loss)
    assert math.isfinite(result.validation["psnr"])
    from mriviewer.core.checkpoints import load_model

    model, card = load_model(tmp_path / strategy / "model.safetensors")
    assert model.config()["denoiser"] == "3d"
    assert card.training_data["train"]["dynamic"] is True
    assert card.training_data["train"]["shapes (T, C, H, W)"] == [[FRAMES, COILS, SIZE, SIZE]]


def test_gleam_module_updates_are_local_on_cine(cine_data):
    """One GLEAM step on a cine batch: module m's loss only moves module m's parameters, and
    the pgleam strategy name runs the same updates in one process."""
    from mriviewer.core.training.cine_data import CineDataset
    from mriviewer.core.training.data import collate
    from mriviewer.core.training.strategies import make_optimisers, train_step

    config = _config(cine_data, Path("unused"))
    data = CineDataset(cine_data / "train", config.mask_spec(), [4.0], "lowres")
    batch = collate([data.sample(0, seed=5)])
    assert batch.kspace.shape == (FRAMES, COILS, SIZE, SIZE)
    assert batch.mask.shape == (FRAMES, SIZE, SIZE)
    weights = []
    for strategy in ("gleam", "pgleam"):
        torch.manual_seed(0)
        model = build_model(dict(config.model))
        before = [p.detach().clone() for p in model.parameters()]
        optimisers = make_optimisers(model, strategy, 2, 1e-3)
        result = train_step(model, batch, optimisers, strategy)
        assert len(result.module_losses) == 2 and all(map(math.isfinite, result.module_losses))
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
        weights.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*weights, strict=True):
        torch.testing.assert_close(a, b)


def test_cine_settings_are_checked(cine_data, tmp_path):
    with pytest.raises(ConfigError, match="cine data only"):
        _config(cine_data, tmp_path, dynamic=False)
    with pytest.raises(ConfigError, match="batch_size = 1"):
        _config(cine_data, tmp_path, batch_size=2)
    with pytest.raises(ConfigError, match="k-t mask"):
        _config(cine_data, tmp_path, **{"mask.kind": "poisson"})


def test_a_trained_cine_model_is_a_cine_method(cine_data, tmp_path):
    from mriviewer.core.cine import get_cine_method, prepare_cine_problem, stream_cine
    from mriviewer.core.physics.kt_masks import make_kt_mask
    from mriviewer.core.physics.masks import MaskSpec

    train(_config(cine_data, tmp_path / "run", strategy="gleam", val_dir=None))
    method = get_cine_method(f"model:{tmp_path / 'run' / 'model.safetensors'}")
    kspace = cine_series(7)
    mask = make_kt_mask(MaskSpec("random", 4.0, 0.17, seed=3), FRAMES, (SIZE, SIZE))
    problem = prepare_cine_problem(kspace, mask, coil_method="lowres")
    records = list(stream_cine(method, problem))
    assert [r.iteration for r in records] == [0, 1, 2] and records[-1].final
    assert records[-1].image.shape == (FRAMES, SIZE, SIZE)
    assert math.isfinite(records[-1].metrics["psnr"])
    assert len(records[-1].metrics["psnr_per_frame"]) == FRAMES


def test_bench_train_and_plan_on_a_cine_problem():
    from mriviewer.benchmarks.plan import plan_memory
    from mriviewer.benchmarks.train import bench_train

    model = {"name": "modl", "features": 4, "cg_iters": 2, "shared": False, "denoiser": "3d"}
    result = bench_train(
        model | {"num_unrolls": 2},
        ["e2e", "gleam"],
        modules=2,
        size=SIZE,
        coils=COILS,
        warmup=0,
        iterations=1,
        frames=FRAMES,
    )
    assert result["settings"]["frames"] == FRAMES
    e2e, gleam = (result["strategies"][s]["peak_memory_bytes"] for s in ("e2e", "gleam"))
    assert 0 < gleam < e2e
    plan = plan_memory(
        model, 2**30, ["gleam"], [1, 2], size=SIZE, coils=COILS, frames=FRAMES, warmup=0
    )
    assert plan.batch_shape == (FRAMES, COILS, SIZE, SIZE)
    assert plan.choice is not None and plan.choice.unrolls == 2


def test_pgleam_on_two_processes_equals_gleam_on_cine(cine_data, tmp_path):
    """P-GLEAM over 2 torchrun processes (one module each) reaches GLEAM's weights on cine."""
    from safetensors.torch import load_file

    from tests.core.training.test_distributed import _assert_same_weights, _errors, _free_port

    settings = {k: v for k, v in COMMON.items() if k not in ("model.cg_iters", "val_every")}
    settings |= {"model.cg_iters": 10, "modules": 2, "train_dir": str(cine_data / "train")}
    out = tmp_path / "pgleam"
    cmd = [
        *("-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"),
        *("--master-port", str(_free_port()), "-m", "mriviewer", "train", "--dynamic"),
        *("--denoiser", "3d", "--model", "modl", "--unrolls", "2", "--modules", "2"),
        *("--features", "4", "--coil-method", "lowres", "--mask", "random"),
        *("--center-fraction", "0.17", "--accelerations", "4", "--steps", "2", "--seed", "1"),
        *("--strategy", "pgleam", "--train", str(cine_data / "train"), "--output", str(out)),
        "--no-progress",
    ]
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    proc = subprocess.run(
        [sys.executable, *cmd], capture_output=True, text=True, env=env, timeout=240, check=False
    )
    assert proc.returncode == 0, _errors(proc)
    reference = tmp_path / "gleam"
    train(load_config(None, settings | {"strategy": "gleam", "output": str(reference)}))
    _assert_same_weights(
        load_file(str(out / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    )


@pytest.mark.parametrize("name", ["dense", "gleam"])
def test_cine_training_configs_load(name):
    repo = Path(__file__).resolve().parents[3]
    config = load_config(repo / "resources" / "training" / "cine" / f"{name}.toml")
    assert config.dynamic and config.accelerations == [8.0]
    model = build_model(dict(config.model))
    assert model.denoiser == "3d" and model.num_unrolls == 4
    assert config.strategy == ("e2e" if name == "dense" else "gleam")


def test_bench_train_dynamic_command(capsys):
    from mriviewer.cli import main

    tiny = ["--size", str(SIZE), "--coils", str(COILS), "--unrolls", "2", "--features", "4"]
    tiny += ["--cg-iters", "2", "--warmup", "0", "--iterations", "1", "--threads", "1"]
    assert main(["bench", "train", "--dynamic", "--frames", "4", "--denoiser", "2+1d", *tiny]) == 0
    out = capsys.readouterr().out
    assert "frames 4 denoiser 2+1d" in out and "gleam" in out
    assert main(["bench", "train", "--denoiser", "3d", *tiny]) != 0
    assert "add --dynamic" in capsys.readouterr().err


def test_train_dynamic_says_which_denoiser_and_what_it_left_out(cine_data, tmp_path, capsys):
    """The training line names the denoiser; a 2d one on cine gets a warning; 2-D files in a
    cine training folder are left out with a note (nothing is chosen silently)."""
    import shutil

    from mriviewer.cli import main

    mixed = tmp_path / "mixed"
    shutil.copytree(cine_data / "train", mixed)
    shutil.copy(Path(__file__).resolve().parents[3] / "resources" / "demo" / "demo_brain.h5", mixed)
    common = ["train", "--dynamic", "--train", str(mixed), "--model", "modl", "--unrolls", "1",
              "--features", "4", "--accelerations", "4", "--steps", "1", "--threads", "1",
              "--no-progress"]  # fmt: skip
    assert main([*common, "--output", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert ", 2d denoiser" in captured.out
    assert "a 2d denoiser on cine series denoises each frame on its own" in captured.err
    assert "1 non-cine file(s) left out" in captured.err
    assert main([*common, "--denoiser", "3d", "--output", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert ", 3d denoiser" in captured.out and "each frame on its own" not in captured.err


def test_cine_training_on_coil_compressed_series(cine_data, tmp_path):
    """virtual_coils on cine training (refused before): each sample is compressed to V virtual
    coils by one SVD over its frames; the target is the SENSE combination of the fully sampled
    series in the same virtual coils; a run trains and its card says so."""
    from mriviewer.core.physics.fft import ifft2c_np
    from mriviewer.core.training.trainer import make_dataset

    config = _config(cine_data, tmp_path / "vc", virtual_coils=2, steps=2)
    data = make_dataset(config, train=True)
    sample = data.sample(0, seed=5)
    assert sample.kspace.shape == (FRAMES, 2, SIZE, SIZE) and sample.maps.shape == (2, SIZE, SIZE)
    full = data.sample(0, seed=5)  # deterministic in the seed
    np.testing.assert_array_equal(full.kspace, sample.kspace)
    # the target is the maps' combination of the compressed fully sampled data
    from mriviewer.core.cine import prepare_cine_problem

    volume = data._volumes[data.slices[0].path]
    kspace = volume.read_kspace(0)
    problem = prepare_cine_problem(kspace, sample.mask, coil_method="lowres", virtual_coils=2)
    compressed = np.moveaxis(np.tensordot(problem.compression, kspace, axes=([1], [1])), 0, 1)
    expected = (problem.coil_maps.conj()[None] * ifft2c_np(compressed)).sum(1) / problem.scale
    np.testing.assert_allclose(sample.target, expected, rtol=1e-4, atol=1e-5)
    # against the uncompressed target the combined image changes little (2 of 4 coils)
    plain = make_dataset(_config(cine_data, tmp_path / "p"), train=True).sample(0, seed=5)
    error = np.linalg.norm(np.abs(sample.target) - np.abs(plain.target))
    assert error / np.linalg.norm(plain.target) < 0.2
    result = train(config)
    assert result.steps == 2
    card = (tmp_path / "vc" / "model.json").read_text()
    assert "compressed to 2 virtual coils" in card
    with pytest.raises(ConfigError, match="crop_readout"):
        _config(cine_data, tmp_path, crop_readout=8)
