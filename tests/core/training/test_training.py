"""Training core: dataset, strategies (e2e / checkpoint / GLEAM), resume, `mriviewer train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mriviewer.cli import main
from mriviewer.core.compare import get_method, kspace_scale, prepare_problem
from mriviewer.core.errors import ConfigError
from mriviewer.core.io import write_fastmri
from mriviewer.core.models import MoDL, UnrolledPGD, build_model
from mriviewer.core.physics.masks import MaskSpec, make_mask
from mriviewer.core.training import (
    SliceDataset,
    check_strategy,
    collate,
    image_loss,
    load_config,
    make_optimisers,
    module_parameters,
    module_ranges,
    run_modules,
    train,
    train_step,
)
from tests.conftest import phantom_case

SIZE = 32
MASK = {"kind": "random", "center_fraction": 0.16}


def _write_cases(folder: Path, seeds, slices=2, size=SIZE, coils=4) -> Path:
    for s in seeds:
        ks = np.stack(
            [phantom_case(size, size, coils=coils, seed=10 * s + j)[0] for j in range(slices)]
        )
        write_fastmri(folder / f"case{s}.h5", ks)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    _write_cases(root / "train", [0, 1], slices=2)
    _write_cases(root / "val", [7], slices=1)
    return root


def _dataset(folder, coil_method="lowres"):
    return SliceDataset(folder, MaskSpec(**MASK), [4.0], coil_method=coil_method)


def _batch(data, n=2):
    ds = _dataset(data / "train")
    return collate([ds.sample(i, seed=i) for i in range(n)])


def test_dataset_samples_masks_and_normalisation(data):
    ds = _dataset(data / "train")
    assert len(ds) == 4 and ds.describe()["files"] == 2
    a, b = ds.sample(0, seed=1), ds.sample(0, seed=2)
    assert a.kspace.shape == (4, SIZE, SIZE) and a.kspace.dtype == np.complex64
    assert a.mask.shape == (SIZE, SIZE) and a.mask.dtype == bool
    assert not np.array_equal(a.mask, b.mask)  # a new mask per draw
    # same normalisation as the inference path (prepare_problem)
    full = phantom_case(SIZE, SIZE, coils=4, seed=0)[0]
    assert a.scale == pytest.approx(kspace_scale(full * a.mask[None]))
    problem = prepare_problem(full, a.mask, coil_method="lowres")
    assert problem.scale == pytest.approx(a.scale)
    np.testing.assert_allclose(a.kspace, problem.kspace, rtol=1e-5, atol=1e-7)
    assert np.all(a.kspace[:, ~a.mask] == 0)
    # target: in normalised units, magnitude close to the reference / scale
    ref = a.reference / a.scale
    assert np.abs(np.abs(a.target) - ref).mean() < 0.1 * ref.mean()
    # validation masks are fixed per case
    v1, v2 = ds.validation_sample(1, 4.0), ds.validation_sample(1, 4.0)
    np.testing.assert_array_equal(v1.mask, v2.mask)
    batch = collate([a, b])
    assert batch.kspace.shape == (2, 4, SIZE, SIZE) and batch.target.shape == (2, SIZE, SIZE)


def test_batches_group_same_size_slices(tmp_path):
    _write_cases(tmp_path, [0], slices=3, size=32)
    _write_cases(tmp_path, [5], slices=2, size=24)
    ds = _dataset(tmp_path)
    batches = ds.epoch_batches(0, 2, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(5))
    for b in batches:
        assert len({ds.slices[i].shape for i in b}) == 1
    assert batches == ds.epoch_batches(0, 2, seed=0) != ds.epoch_batches(1, 2, seed=0)
    with pytest.raises(ConfigError, match="one shape"):
        collate([ds.sample(0, 0), ds.sample(4, 0)])
    with pytest.raises(ConfigError, match="data folder not found"):
        SliceDataset(tmp_path / "missing", MaskSpec(), [4.0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no k-space slices"):
        SliceDataset(tmp_path / "empty", MaskSpec(), [4.0])


def test_gleam_refusals():
    with pytest.raises(ConfigError, match=r"divisible by the number of modules \(3\)"):
        check_strategy(MoDL(num_unrolls=4, features=4, shared=False), "gleam", 3)
    with pytest.raises(ConfigError, match="shared = false"):
        check_strategy(MoDL(num_unrolls=4, features=4, shared=True), "gleam", 2)
    with pytest.raises(ConfigError, match="unknown strategy"):
        check_strategy(MoDL(num_unrolls=4, features=4), "greedy")
    assert module_ranges(6, 3) == [(0, 2), (2, 4), (4, 6)]


@pytest.mark.parametrize("arch", ["modl", "pgd"])
def test_gleam_module_gradients_are_local(data, arch):
    """Module m's gradient equals that of its own local loss in isolation: nothing leaks."""
    torch.manual_seed(0)
    if arch == "modl":
        model = MoDL(num_unrolls=4, features=6, depth=3, shared=False, cg_iters=4)
    else:
        model = UnrolledPGD(num_unrolls=4, features=6, blocks=1)
    batch = _batch(data)
    optimisers = make_optimisers(model, "gleam", 2, lr=0.0)  # lr 0: weights stay put
    seen: dict[int, torch.Tensor] = {}  # each gradient as its optimiser steps (then released)
    for opt in optimisers:
        opt.register_step_pre_hook(
            lambda o, args, kwargs: seen.update(
                {id(p): p.grad.clone() for g in o.param_groups for p in g["params"]}
            )
        )
    train_step(model, batch, optimisers, "gleam")
    assert all(p.grad is None for p in model.parameters())  # released after each module's step
    ranges = module_ranges(4, 2)
    for start, stop in ranges:
        with torch.no_grad():
            x_in = model(batch.kspace, batch.maps, batch.mask, stop=start)
        out = model(batch.kspace, batch.maps, batch.mask, x0=x_in, start=start, stop=stop)
        local = image_loss(out, batch.target)
        params = module_parameters(model, start, stop)
        others = [p for p in model.parameters() if all(p is not q for q in params)]
        grads = torch.autograd.grad(local, params + others, allow_unused=True)
        for p, g in zip(params, grads[: len(params)], strict=True):
            torch.testing.assert_close(seen[id(p)], g, rtol=1e-5, atol=1e-7)
        assert all(g is None for g in grads[len(params) :])


def test_checkpoint_gives_the_same_step_as_e2e(data):
    batch = _batch(data)
    torch.manual_seed(1)
    a = MoDL(num_unrolls=2, features=6, depth=3, shared=False, cg_iters=4)
    b = build_model(a.config())
    b.load_state_dict(a.state_dict())
    for model, strategy in ((a, "e2e"), (b, "checkpoint")):
        train_step(model, batch, make_optimisers(model, strategy, None, 1e-3), strategy, "l2")
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_early_exit_with_first_k_modules(data):
    torch.manual_seed(2)
    model = MoDL(num_unrolls=4, features=6, depth=3, shared=False, cg_iters=4)
    batch = _batch(data, n=1)
    opts = make_optimisers(model, "gleam", 4, lr=3e-3)
    for _ in range(10):
        train_step(model, batch, opts, "gleam")
    with torch.no_grad():
        images = list(model.iterate(batch.kspace, batch.maps, batch.mask))
        for k in range(1, 5):
            early = run_modules(model, batch.kspace, batch.maps, batch.mask, modules=4, k=k)
            torch.testing.assert_close(early, images[k - 1])
        aty = run_modules(model, batch.kspace, batch.maps, batch.mask, modules=4, k=0)
    errors = [image_loss(x, batch.target).item() for x in [aty, *images]]
    assert errors[1] < errors[0]  # the first module alone already improves on A^H y


def _config(data, tmp_path, **kw):
    settings = {
        "train_dir": str(data / "train"),
        "val_dir": str(data / "val"),
        "model": {
            "name": "modl",
            "num_unrolls": 2,
            "features": 6,
            "depth": 3,
            "shared": False,
            "cg_iters": 4,
        },
        "mask": MASK,
        "steps": 4,
        "lr": 1e-3,
        "output": str(tmp_path / "run"),
        "progress": False,
        "coil_method": "lowres",
        "val_every": 2,
        "checkpoint_every": 1,
    }
    settings.update(kw)
    return load_config(None, settings)


def test_resume_reaches_the_same_parameters(data, tmp_path):
    full = train(_config(data, tmp_path / "a", strategy="gleam", modules=2, steps=4))
    train(_config(data, tmp_path / "b", strategy="gleam", modules=2, steps=2))
    resumed = train(
        _config(data, tmp_path / "b", strategy="gleam", modules=2, steps=4), resume=True
    )
    assert full.steps == resumed.steps == 4
    sa = torch.load(tmp_path / "a" / "run" / "last.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)
    assert len(sa["optimisers"]) == 2
    for key, value in sa["model"].items():
        torch.testing.assert_close(sb["model"][key], value, rtol=0, atol=0)
    log = [
        json.loads(line) for line in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert {"loss", "lr", "seconds", "peak_memory_bytes", "module_losses", "mu"} <= set(log[0])
    assert len(log[0]["mu"]) == 2 and all(mu > 0 for mu in log[0]["mu"])
    assert "val_psnr" in log[1] and "val_ssim" in log[3]

    # Ctrl-C mid-run: last.pt is written for the completed step and --resume finishes the run
    def interrupt(step, record):
        if step == 3:
            raise KeyboardInterrupt

    config_c = _config(data, tmp_path / "c", strategy="gleam", modules=2, checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt):
        train(config_c, on_step=interrupt)
    assert torch.load(tmp_path / "c" / "run" / "last.pt", weights_only=True)["step"] == 3
    train(config_c, resume=True)
    sc = torch.load(tmp_path / "c" / "run" / "last.pt", weights_only=True)
    for key, value in sa["model"].items():
        torch.testing.assert_close(sc["model"][key], value, rtol=0, atol=0)
    for opt_a, opt_c in zip(sa["optimisers"], sc["optimisers"], strict=True):
        for state_a, state_c in zip(opt_a["state"].values(), opt_c["state"].values(), strict=True):
            torch.testing.assert_close(state_c["exp_avg_sq"], state_a["exp_avg_sq"], rtol=0, atol=0)
    # a finished run refuses to be silently overwritten; resume refuses other settings
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(_config(data, tmp_path / "b", strategy="gleam", modules=2))
    with pytest.raises(ConfigError, match="settings differ"):
        train(_config(data, tmp_path / "b", strategy="e2e"), resume=True)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["e2e", "checkpoint", "gleam"])
@pytest.mark.parametrize("arch", ["modl", "pgd"])
def test_small_models_beat_zero_filled(data, tmp_path, arch, strategy):
    model = (
        {"name": "modl", "num_unrolls": 2, "features": 8, "shared": False, "cg_iters": 3}
        if arch == "modl"
        else {"name": "pgd", "num_unrolls": 2, "features": 8, "blocks": 1}
    )
    config = _config(
        data,
        tmp_path,
        model=model,
        strategy=strategy,
        steps=12,
        lr=3e-3,
        coil_method="espirit",
        val_every=100,
        checkpoint_every=100,
    )
    result = train(config)
    v = result.validation
    assert v["psnr"] > v["zero_filled_psnr"] + 1.0, v
    # the best checkpoint is a reconstruction method
    best = tmp_path / "run" / "best.safetensors"
    card = json.loads(best.with_suffix(".json").read_text())
    assert card["strategy"] == {
        "name": strategy,
        "unrolls": 2,
        "modules": 2 if strategy == "gleam" else 1,
    }
    assert card["loss"] == "l1" and card["validation"]["psnr"] == pytest.approx(v["psnr"])
    kspace = phantom_case(SIZE, SIZE, coils=4, seed=70)[0]
    problem = prepare_problem(
        kspace, make_mask(MaskSpec(**MASK, acceleration=4.0, seed=3), (SIZE, SIZE))
    )
    results = list(get_method(f"model:{best}").iterate(problem, device="cpu"))
    assert len(results) == 3 and results[-1].final


def test_cli_train_and_resume(data, tmp_path, capsys):
    toml = tmp_path / "train.toml"
    toml.write_text(
        f"""
strategy = "gleam"
train_dir = "{data / "train"}"
val_dir = "{data / "val"}"
accelerations = [4.0]
steps = 2
lr = 1e-3
output = "out"
coil_method = "lowres"

[model]
name = "pgd"
num_unrolls = 2
features = 4
blocks = 1

[mask]
kind = "random"
center_fraction = 0.16
"""
    )
    assert main(["train", "--config", str(toml), "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "training pgd N=2" in out and "gleam M=2" in out and "validation: PSNR" in out
    assert (tmp_path / "out" / "best.safetensors").is_file()
    assert (tmp_path / "out" / "model.json").is_file()
    assert main(["train", "--config", str(toml), "--no-progress", "--resume", "--steps", "3"]) == 0
    assert "done: 3 steps" in capsys.readouterr().out
    # the schedule flags: a cosine run of 3 steps from 1e-3 to 1e-5, on the card as well
    flags = ["--lr-schedule", "cosine", "--lr-final", "1e-5", "--output", str(tmp_path / "cos")]
    assert main(["train", "--config", str(toml), "--no-progress", "--steps", "3", *flags]) == 0
    log = [json.loads(line) for line in (tmp_path / "cos" / "log.jsonl").open()]
    assert [r["lr"] for r in log] == pytest.approx([1e-3, 5.05e-4, 1e-5])
    card = json.loads((tmp_path / "cos" / "model.json").read_text())
    assert "cosine" in json.dumps(card)
    capsys.readouterr()
    assert main(["train", "--config", str(toml), "--modules", "3"]) == 1
    assert "divisible by the number of modules (3)" in capsys.readouterr().err
    toml.write_text('strategy = "e2e"\nsteps = 1\ncolour = "red"\n')
    assert main(["train", "--config", str(toml)]) == 1
    err = capsys.readouterr().err
    assert "train.toml" in err and "unknown settings ['colour']" in err


def test_live_tensor_memory_orders_the_strategies():
    """Bytes of live tensors (deterministic, not timed): GLEAM at M = N and checkpointing hold
    far less than end-to-end training."""
    from mriviewer.benchmarks.train import measure_strategy

    model = {
        "name": "modl",
        "num_unrolls": 4,
        "features": 8,
        "depth": 3,
        "shared": False,
        "cg_iters": 3,
    }
    peaks = {
        s: measure_strategy(model, s, modules=4, size=24, coils=2, warmup=0, iterations=1)[
            "peak_memory_bytes"
        ]
        for s in ("e2e", "checkpoint", "gleam")
    }
    assert peaks["gleam"] < 0.6 * peaks["e2e"]
    assert peaks["checkpoint"] < 0.6 * peaks["e2e"]


def test_bench_train_command_json_and_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "train", "--unrolls", "2", "--features", "4", "--size", "24", "--coils", "2"]
    argv += ["--warmup", "0", "--iterations", "1", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "strategy" in printed and "gleam" in printed and "live tensor bytes" in printed
    result = json.loads(out.read_text())
    assert set(result) == {"strategies", "settings"}
    assert list(result["strategies"]) == ["e2e", "checkpoint", "gleam"]
    for entry in result["strategies"].values():
        assert set(entry) == {"peak_memory_bytes", "seconds_per_iteration", "method"}
        assert entry["peak_memory_bytes"] > 0 and entry["seconds_per_iteration"] > 0
    assert result["settings"]["size"] == 24 and result["settings"]["modules"] == 2
    assert main(["bench", "train", "--strategies", "e2e,greedy"]) == 1
    assert "unknown strategies ['greedy']" in capsys.readouterr().err


def test_cosine_lr_schedule_is_applied_logged_and_kept_on_resume(data, tmp_path):
    config = _config(data, tmp_path / "a", steps=5, lr_schedule="cosine", lr_final=1e-4)
    # half a cosine from lr at the first step to lr_final at the last
    expected = [1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + np.cos(np.pi * k / 4)) for k in range(5)]
    assert [config.lr_at(k, 5) for k in range(5)] == pytest.approx(expected)
    assert config.lr_at(0, 5) == pytest.approx(1e-3) and config.lr_at(4, 5) == pytest.approx(1e-4)
    assert _config(data, tmp_path / "x").lr_at(3, 5) == 1e-3  # constant by default
    train(config)
    log = [json.loads(line) for line in (tmp_path / "a" / "run" / "log.jsonl").open()]
    assert [r["lr"] for r in log] == pytest.approx(expected)
    # interrupted after step 2 and resumed: the same curve and the same weights
    half = _config(data, tmp_path / "b", steps=5, lr_schedule="cosine", lr_final=1e-4)

    def interrupt(step, record):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(half, on_step=interrupt)
    train(half, resume=True)
    resumed = [json.loads(line) for line in (tmp_path / "b" / "run" / "log.jsonl").open()]
    assert [r["lr"] for r in resumed] == pytest.approx(expected)
    sa = torch.load(tmp_path / "a" / "run" / "last.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)["model"]
    for key, value in sa.items():
        torch.testing.assert_close(sb[key], value, rtol=0, atol=0)
    # a cosine run's length is part of its curve: resuming it with more steps is refused
    longer = _config(data, tmp_path / "b", steps=8, lr_schedule="cosine", lr_final=1e-4)
    with pytest.raises(ConfigError, match="steps"):
        train(longer, resume=True)
    with pytest.raises(ConfigError, match="lr_schedule"):
        _config(data, tmp_path / "c", lr_schedule="step")
    with pytest.raises(ConfigError, match="lr_final"):
        _config(data, tmp_path / "c", lr_schedule="cosine", lr_final=0.1)


_REPO = Path(__file__).resolve().parents[3]
_CONFIGS = sorted((_REPO / "resources" / "training").rglob("*.toml"))


@pytest.mark.parametrize("path", _CONFIGS, ids=[p.relative_to(_REPO).as_posix() for p in _CONFIGS])
def test_every_shipped_training_config_loads_and_points_into_the_repository(path):
    """Every recipe under resources/training validates, builds its model, and names data and
    output folders inside the repository's data/ and runs/ (relative to the file)."""
    config = load_config(path)
    build_model(dict(config.model))
    for folder, top in (
        (config.train_dir, "data"),
        (config.val_dir, "data"),
        (config.output, "runs"),
    ):
        relative = Path(folder).resolve().relative_to(_REPO)
        assert relative.parts[0] == top, (path, folder)
    assert path.read_text().count(f"--config {path.relative_to(_REPO).as_posix()}") >= 1


def test_config_folders_are_absolute_so_moving_the_config_does_not_break_a_run(
    data, tmp_path, monkeypatch
):
    """Folders in a TOML are relative to it; they are stored absolute and normalised, so a run
    keeps writing where it started when the config's folder is renamed or removed mid-run (a
    run with output "cfg/../../runs/x" used to die on its next log write)."""
    folder = tmp_path / "configs" / "v2"
    folder.mkdir(parents=True)
    toml = folder / "t.toml"
    toml.write_text(
        f'train_dir = "{data / "train"}"\nsteps = 1\noutput = "../../runs/x"\n'
        '[model]\nname = "modl"\n'
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("configs/v2/t.toml"))
    assert config.output == str(tmp_path / "runs" / "x")
    folder.rename(tmp_path / "configs" / "moved")
    (tmp_path / "configs").rename(tmp_path / "elsewhere")
    assert Path(config.output).parent == tmp_path / "runs"
