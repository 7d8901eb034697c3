"""Pruning (PUN-IT / PUN-WT / PUN-AT): densities, masks through training, save/load, accounting,
settings errors, `mriviewer train --prune`, `mriviewer prune` and `mriviewer info`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mriviewer.cli import main
from mriviewer.core.checkpoints import load_model, read_card, save_model
from mriviewer.core.errors import ConfigError
from mriviewer.core.io import write_fastmri
from mriviewer.core.models import MoDL, UnrolledPGD
from mriviewer.core.physics.masks import MaskSpec, make_mask
from mriviewer.core.pruning import (
    PruneSettings,
    apply_masks,
    at_round_densities,
    current_masks,
    density_report,
    flop_report,
    global_topk,
    kept_count,
    load_pruned,
    magnitude_masks,
    make_permanent,
    prune_after_training,
    pun_it_search,
    read_masks,
    select_prunable,
    wt_density,
)
from mriviewer.core.pruning.masks import effective_weight, fan_in_rescale, param_key, set_info
from mriviewer.core.pruning.pun_it import masked_loss
from mriviewer.core.training import load_config
from tests.conftest import phantom_case

SIZE = 32


def _batch(seed: int = 1) -> SimpleNamespace:
    kspace, image, maps = phantom_case(SIZE, SIZE, coils=4, seed=seed)
    mask = make_mask(MaskSpec("random", 4.0, 0.16, seed=3), (SIZE, SIZE)).array
    scale = np.abs(image).max()
    return SimpleNamespace(
        kspace=torch.from_numpy(kspace * mask[None] / scale)[None],
        maps=torch.from_numpy(maps)[None],
        mask=torch.from_numpy(mask)[None],
        target=torch.from_numpy(image / scale)[None],
    )


def _modl(shared: bool = False, **kw) -> MoDL:
    torch.manual_seed(0)
    return MoDL(num_unrolls=2, features=8, depth=3, shared=shared, cg_iters=3, **kw)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prune-data")
    for split, seeds in (("train", [0, 1]), ("val", [7])):
        (root / split).mkdir()
        for s in seeds:
            ks = np.stack([phantom_case(SIZE, SIZE, coils=4, seed=10 * s + j)[0] for j in range(2)])
            write_fastmri(root / split / f"case{s}.h5", ks)
    return root


# -- densities --------------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0.03, 0.1, 0.5, 1.0])
def test_magnitude_density_is_exact_globally_and_per_layer(density):
    model = _modl()
    names = select_prunable(model)
    total = sum(effective_weight(model, n).numel() for n in names)
    apply_masks(model, magnitude_masks(model, names, density))
    report = density_report(model, names)
    assert report["kept"] == kept_count(total, density) == round(density * total)
    assert report["density"] == report["kept"] / total
    assert abs(report["density"] - density) <= 0.5 / total
    assert sum(layer["kept"] for layer in report["layers"].values()) == report["kept"]
    for name, layer in report["layers"].items():
        w = effective_weight(model, name)
        assert layer["kept"] == int((w != 0).sum())  # what is reported is what is there
        assert layer["density"] == layer["kept"] / w.numel()
    # magnitude: every kept weight is at least as large as every pruned one
    kept = torch.cat([effective_weight(model, n)[current_masks(model)[n]].abs() for n in names])
    pruned = torch.cat(
        [model.get_submodule(n[:-7]).weight_orig[~current_masks(model)[n]].abs() for n in names]
    )
    if pruned.numel():
        assert kept.min() >= pruned.max()


def test_global_topk_keeps_exactly_k_even_with_ties():
    scores = {"a": torch.ones(10), "b": torch.ones(3, 3)}
    masks = global_topk(scores, 7)
    assert sum(int(m.sum()) for m in masks.values()) == 7
    assert masks["b"].shape == (3, 3)


def test_exempt_first_last_and_layer_patterns():
    model = UnrolledPGD(num_unrolls=2, features=4, blocks=1, shared=False)
    every = select_prunable(model)
    assert "denoisers.0.head.weight" in every and "denoisers.1.tail.weight" in every
    middle = select_prunable(model, exempt=["first", "last"])
    assert not any(n.endswith(("head.weight", "tail.weight")) for n in middle)
    assert len(middle) == len(every) - 4
    assert select_prunable(model, layers=["denoisers.1.*"]) == [
        n for n in every if n.startswith("denoisers.1.")
    ]


# -- bad settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0, -0.1, 1.5, float("nan"), "abc"])
def test_bad_density_is_a_config_error(density):
    with pytest.raises(ConfigError, match="density must be"):
        PruneSettings(density=density).validate()
    with pytest.raises(ConfigError, match="density must be"):
        magnitude_masks(_modl(), select_prunable(_modl()), density)


def test_unknown_layer_names_and_settings_are_config_errors():
    model = _modl()
    with pytest.raises(ConfigError, match="'denoisers.9.net.0' matches no conv weight"):
        select_prunable(model, layers=["denoisers.9.net.0"])
    with pytest.raises(ConfigError, match="matches no conv weight"):
        select_prunable(model, exempt=["nonsense"])
    with pytest.raises(ConfigError, match="unknown \\[prune\\] settings \\['sparsity'\\]"):
        PruneSettings.from_dict({"method": "it", "sparsity": 0.9})
    with pytest.raises(ConfigError, match="unknown pruning method"):
        PruneSettings.from_dict({"method": "lottery"})
    with pytest.raises(ConfigError, match="rewind"):
        PruneSettings.from_dict({"method": "at", "rewind": "late"})
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        PruneSettings.from_dict({"method": "it", "temperature": 0})


def test_train_config_prune_errors(data):
    base = {"train_dir": str(data / "train"), "steps": 2}
    with pytest.raises(ConfigError, match="density must be in"):
        load_config(None, base | {"prune.method": "it", "prune.density": 2.0})
    with pytest.raises(ConfigError, match="without a method"):
        load_config(None, base | {"prune.density": 0.1})
    config = load_config(None, base | {"prune.method": "wt", "prune.density": 0.2})
    assert config.prune == {"method": "wt", "density": 0.2}
    toml = data / "prune.toml"
    toml.write_text('steps = 2\n[prune]\nmethod = "at"\ndensity = 0.1\nexempt = ["first"]\n')
    config = load_config(toml, {"train_dir": str(data / "train"), "prune.rounds": 2})
    assert config.prune == {"method": "at", "density": 0.1, "exempt": ["first"], "rounds": 2}
    toml.write_text('steps = 2\n[prune]\nmethod = "at"\nsparsity = 0.9\n')
    with pytest.raises(ConfigError, match="unknown \\[prune\\] settings"):
        load_config(toml, {"train_dir": str(data / "train")})


# -- masks stay applied -------------------------------------------------------------------------


@pytest.mark.parametrize("model_kind", ["modl-shared", "pgd-unshared"])
def test_pruned_weights_stay_zero_through_adam(model_kind):
    model = (
        _modl(shared=True)
        if model_kind == "modl-shared"
        else UnrolledPGD(num_unrolls=2, features=4, blocks=1, shared=False)
    )
    names = select_prunable(model)
    masks = magnitude_masks(model, names, 0.1)
    apply_masks(model, masks)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)  # built after pruning
    batch = _batch()
    for _ in range(12):
        optimiser.zero_grad()
        loss = (model(batch.kspace, batch.maps, batch.mask) - batch.target).abs().mean()
        loss.backward()
        optimiser.step()
    for name in names:
        assert torch.all(effective_weight(model, name)[~masks[name]] == 0)
        # momentum moved the hidden originals, the mask keeps them out of the forward
        module = model.get_submodule(name.rsplit(".", 1)[0])
        assert torch.all(module.weight[~masks[name]] == 0)
    assert density_report(model, names)["kept"] == sum(int(m.sum()) for m in masks.values())
    make_permanent(model)
    for name in names:
        assert torch.all(model.get_submodule(name.rsplit(".", 1)[0]).weight[~masks[name]] == 0)


# -- PUN-IT -------------------------------------------------------------------------------------


def test_pun_it_mask_beats_random_masks_of_the_same_density():
    torch.manual_seed(0)
    model = UnrolledPGD(num_unrolls=2, features=8, blocks=1, shared=True)
    with torch.no_grad():  # the denoiser at full strength, so which weights are kept matters
        model.denoisers[0].tail.weight.mul_(10)
    batch = _batch()
    names = select_prunable(model)
    settings = PruneSettings(
        method="it", density=0.2, search_steps=60, search_lr=0.3, temperature=0.2, log_every=20
    )
    result = pun_it_search(model, lambda step: batch, settings, names=names, generator_seed=1)
    total = sum(effective_weight(model, n).numel() for n in names)
    assert sum(int(m.sum()) for m in result.masks.values()) == kept_count(total, 0.2)
    assert [r["search_step"] for r in result.history] == list(range(1, 61))
    assert all("expected_density" in r and 0 < r["expected_density"] < 1 for r in result.history)
    assert [r["search_step"] for r in result.history if "hard_mask_loss" in r] == [20, 40, 60]
    assert all(p.requires_grad for p in model.parameters())  # restored after the search

    def loss_with(masks):
        weights = {
            param_key(model, n): effective_weight(model, n) * masks[n].float() for n in names
        }
        with torch.no_grad():
            return float(masked_loss(model, weights, batch))

    learned = loss_with(result.masks)
    assert learned == pytest.approx(result.history[-1]["hard_mask_loss"])
    g = torch.Generator().manual_seed(0)
    random_losses = [
        loss_with(
            global_topk(
                {n: torch.rand(effective_weight(model, n).shape, generator=g) for n in names},
                kept_count(total, 0.2),
            )
        )
        for _ in range(5)
    ]
    assert learned < min(random_losses), (learned, random_losses)


def test_pun_it_gleam_search_and_annealed_temperature():
    model = _modl(shared=False)
    settings = PruneSettings(
        method="it",
        density=0.05,
        search_steps=3,
        temperature=1.0,
        temperature_final=0.1,
        straight_through=True,
        exempt=["first", "last"],
    )
    batch = _batch()
    result = pun_it_search(model, lambda s: batch, settings, strategy="gleam", modules=2)
    temps = [r["temperature"] for r in result.history]
    assert temps[0] == 1.0 and math.isclose(temps[-1], 0.1) and temps[0] > temps[1] > temps[2]
    assert set(result.masks) == set(select_prunable(model, exempt=["first", "last"]))


# -- PUN-WT / PUN-AT ----------------------------------------------------------------------------


def test_wt_schedule_reaches_target_at_the_end():
    s = PruneSettings(method="wt", density=0.05, start_fraction=0.2, end_fraction=0.6)
    values = [wt_density(step, 100, s) for step in range(101)]
    assert values[0] == 1.0 and values[20] == 1.0
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert values[60] == pytest.approx(0.05) and values[100] == 0.05


def test_pun_at_reaches_target_in_the_configured_rounds():
    model = _modl()
    names = select_prunable(model)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    batch = _batch()
    calls = []

    def finetune(net, round_index):
        optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(3):
            optimiser.zero_grad()
            loss = (net(batch.kspace, batch.maps, batch.mask) - batch.target).abs().mean()
            loss.backward()
            optimiser.step()
        calls.append(round_index)
        return {"loss": float(loss.detach())}

    settings = PruneSettings(method="at", density=0.05, rounds=3, rewind="init")
    history = prune_after_training(model, names, settings, finetune, initial_state=initial)
    total = density_report(model, names)["total"]
    assert calls == [1, 2, 3] and len(history) == 3
    expected = at_round_densities(0.05, 3)
    assert expected[-1] == 0.05 and expected[0] == pytest.approx(0.05 ** (1 / 3))
    for record, target in zip(history, expected, strict=True):
        assert record["target_density"] == target
        assert abs(record["density"] - target) <= 0.5 / total
    assert density_report(model, names)["kept"] == kept_count(total, 0.05)


# -- save / load / info ---------------------------------------------------------------------------


def test_pruned_model_saves_reloads_and_reconstructs_identically(tmp_path, capsys):
    model = _modl()
    names = select_prunable(model, exempt=["last"])
    apply_masks(model, magnitude_masks(model, names, 0.1))
    set_info(model, "pun-at", {"density": 0.1})
    path = save_model(tmp_path / "pruned.safetensors", model)
    batch = _batch()
    with torch.no_grad():
        expected = model(batch.kspace, batch.maps, batch.mask)
    plain, card = load_model(path)
    again, _ = load_pruned(path)
    with torch.no_grad():
        assert torch.equal(plain(batch.kspace, batch.maps, batch.mask), expected)
        assert torch.equal(again(batch.kspace, batch.maps, batch.mask), expected)
    masks = read_masks(path)
    assert set(masks) == set(names)
    for name in names:
        assert torch.equal(masks[name], current_masks(model)[name])
        assert torch.equal(current_masks(again)[name], masks[name])
    record = card.extra["pruning"]
    assert record["method"] == "pun-at"
    assert record["density"] == density_report(model, names)["density"]
    assert set(record["layers"]) == set(names)

    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["density"] == pytest.approx(record["density"])
    assert info["pruning"]["method"] == "pun-at"
    assert info["params"]["nonzero"] < info["params"]["total"]
    assert info["flops"]["pruned"] < info["flops"]["dense"]
    assert info["flops"]["image_size"] == [256, 256] and info["flops"]["coils"] == 8

    dense_path = save_model(tmp_path / "dense.safetensors", _modl())
    assert main(["info", str(dense_path), "--json"]) == 0
    dense = json.loads(capsys.readouterr().out)
    assert dense["density"] == 1.0 and dense["flops"]["pruned"] == dense["flops"]["dense"]
    assert main(["info", str(path)]) == 0
    assert "density:" in capsys.readouterr().out


def test_flop_accounting_by_hand():
    h = w = 16
    model = MoDL(num_unrolls=3, features=4, depth=3, shared=True, cg_iters=2)
    per_denoiser = (2 * 4 + 4 * 4 + 4 * 2) * 9  # 3x3 convs 2->4, 4->4, 4->2
    report = flop_report(model, h, w, coils=2)
    assert report["conv_macs"]["dense"] == 3 * per_denoiser * h * w  # shared: applied N times
    n = h * w
    fft = 5 * n * math.log2(n)
    normal = 2 * 2 * fft + 3 * 2 * n * 6
    dc = (2 * fft + 2 * n * 6) + 3 * (2 * (normal + 5 * n * 8) + 2 * n * 8)
    assert report["data_consistency_flops"] == pytest.approx(dc)
    names = select_prunable(model)
    apply_masks(model, magnitude_masks(model, names, 0.25))
    pruned = flop_report(model, h, w, coils=2)
    assert pruned["conv_macs"]["pruned"] == 3 * density_report(model)["kept"] * h * w
    assert pruned["dense"] == report["dense"]


# -- command line -------------------------------------------------------------------------------


def _train_args(data: Path, out: Path, *extra: str, steps: int = 4) -> list[str]:
    return [
        "train",
        "--train", str(data / "train"),
        "--unrolls", "2",
        "--features", "4",
        "--steps", str(steps),
        "--mask", "random",
        "--center-fraction", "0.16",
        "--coil-method", "lowres",
        "--no-progress",
        "--output", str(out),
        *extra,
    ]  # fmt: skip


def test_train_prune_it_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "it"
    args = _train_args(data, out, "--prune", "it", "--density", "0.1", "--prune-search-steps", "3")
    assert main(args + ["--prune-exempt", "first,last"]) == 0
    printed = capsys.readouterr().out
    assert "pruning: pun-it, density 0." in printed and "(target 0.1)" in printed
    card = read_card(out / "model.safetensors")
    assert card.extra["pruning"]["method"] == "pun-it"
    model, _ = load_pruned(out / "model.safetensors")
    names = select_prunable(model, exempt=["first", "last"])
    total = density_report(model, names)["total"]
    assert card.extra["pruning"]["density"] == kept_count(total, 0.1) / total
    assert set(read_masks(out / "model.safetensors")) == set(names)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    search = [r for r in log if r.get("phase") == "pun-it search"]
    assert len(search) == 3 and "hard_mask_loss" in search[-1]
    steps = [r for r in log if "phase" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(r["density"] == card.extra["pruning"]["density"] for r in steps)


def test_train_prune_wt_pgd_shared_and_at_gleam(data, tmp_path):
    wt = tmp_path / "wt"
    args = _train_args(data, wt, "--model", "pgd", "--shared", "--prune", "wt", "--density", "0.2")
    assert main(args + ["--prune-every", "1"]) == 0
    log = [json.loads(line) for line in (wt / "log.jsonl").read_text().splitlines()]
    densities = [r["density"] for r in log]
    assert densities[-1] == pytest.approx(0.2, abs=1e-3) and densities[0] > densities[-1]
    assert read_card(wt / "model.safetensors").extra["pruning"]["method"] == "pun-wt"

    at = tmp_path / "at"
    args = _train_args(data, at, "--strategy", "gleam", "--no-shared", "--prune", "at")
    flags = ["--density", "0.1", "--prune-rounds", "2", "--prune-finetune-steps", "1"]
    assert main(args + flags + ["--prune-rewind", "init"]) == 0
    log = [json.loads(line) for line in (at / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "pruned_to" in r] == [2, 3]
    assert log[-1]["density"] == pytest.approx(0.1, abs=1e-3)
    card = read_card(at / "model.safetensors")
    assert card.extra["pruning"]["method"] == "pun-at" and card.strategy["name"] == "gleam"


def test_prune_command_at_with_finetuning(data, tmp_path, capsys):
    source = tmp_path / "dense"
    assert main(_train_args(data, source)) == 0
    toml = tmp_path / "train.toml"
    toml.write_text(
        f'train_dir = "{data / "train"}"\nsteps = 1\ncoil_method = "lowres"\n'
        '[mask]\nkind = "random"\ncenter_fraction = 0.16\n'
    )
    capsys.readouterr()
    out = tmp_path / "pruned"
    args = ["prune", str(source / "model.safetensors"), "--density", "0.05", "--rounds", "2"]
    args += ["--finetune-steps", "2", "--config", str(toml), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "round" in printed and "pruned model:" in printed
    assert (out / "round1" / "model.safetensors").is_file()
    assert (out / "round2" / "model.safetensors").is_file()
    card = read_card(out / "model.safetensors")
    assert [r["round"] for r in card.extra["pun_at"]["rounds"]] == [1, 2]
    assert card.extra["pruning"]["method"] == "pun-at"
    assert card.extra["pruning"]["density"] == pytest.approx(0.05, abs=1e-3)
    assert main(["prune", str(source / "model.safetensors"), "--density", "0", "--out", "x"]) == 1
    assert "density must be in (0, 1]" in capsys.readouterr().err


def test_resume_keeps_the_searched_mask_and_refuses_other_prune_settings(data, tmp_path, capsys):
    out = tmp_path / "resume"
    prune = ["--prune", "it", "--prune-search-steps", "2", "--checkpoint-every", "1"]
    assert main(_train_args(data, out, *prune, "--density", "0.2", steps=2)) == 0
    first = read_masks(out / "model.safetensors")
    more = _train_args(data, out, *prune, "--density", "0.2", "--resume", steps=4)
    assert main(more) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert sum(r.get("phase") == "pun-it mask" for r in log) == 1  # no second search
    assert [r["step"] for r in log if "phase" not in r] == [1, 2, 3, 4]
    final = read_masks(out / "model.safetensors")
    assert all(torch.equal(first[n], final[n]) for n in first)
    capsys.readouterr()
    other = _train_args(data, out, *prune, "--density", "0.3", "--resume", steps=6)
    assert main(other) == 1
    assert "settings differ" in capsys.readouterr().err


def test_min_layer_density_prevents_layer_collapse():
    scores = {"big": torch.arange(100.0) + 100, "small": torch.arange(20.0)}
    plain = global_topk(scores, 20)
    assert int(plain["small"].sum()) == 0  # collapse: the small-scored layer loses everything
    guarded = global_topk(scores, 20, min_layer_density=0.1)
    assert int(guarded["small"].sum()) == 2 and int(guarded["big"].sum()) == 18
    assert bool(guarded["small"][-2:].all())  # the layer keeps its own best weights
    with pytest.raises(ConfigError, match="min_layer_density must be in"):
        PruneSettings(density=0.05, min_layer_density=0.1).validate()
    model = _modl()
    names = select_prunable(model)
    masks = magnitude_masks(model, names, 0.05, min_layer_density=0.02)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == kept_count(total, 0.05)
    assert all(m.float().mean() >= 0.02 for m in masks.values())


def test_fan_in_rescale_preserves_each_channels_output_variance():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 4, 3, padding=1, bias=False)
    dense = conv.weight.detach().clone()
    mask = torch.zeros_like(dense, dtype=torch.bool)
    mask[0].view(-1)[:36] = True  # 36 of 144 kept: scale 2
    mask[1].view(-1)[:9] = True  # 9 of 144: scale 4
    mask[2].view(-1)[:144] = True  # dense channel: scale 1
    model = torch.nn.Sequential(conv)  # channel 3 keeps nothing
    apply_masks(model, {"0.weight": mask})
    scales = fan_in_rescale(model, ["0.weight"])
    weight = effective_weight(model, "0.weight").detach()
    torch.testing.assert_close(weight[0], 2 * dense[0] * mask[0])
    torch.testing.assert_close(weight[1], 4 * dense[1] * mask[1])
    torch.testing.assert_close(weight[2], dense[2])
    assert not weight[3].any()
    assert scales["0.weight"] == (3, 1, pytest.approx(2 + 4 + 1))
    # output variance on white input: the pruned channels match the dense layer's
    x = torch.randn(64, 16, 24, 24)
    with torch.no_grad():
        dense_out = torch.nn.functional.conv2d(x, dense, padding=1)[:, :3].var(dim=(0, 2, 3))
        sparse_out = model(x)[:, :3].var(dim=(0, 2, 3))
    ratio = sparse_out / dense_out
    assert ratio[2] == pytest.approx(1.0)
    assert 0.6 < float(ratio[0]) < 1.6 and 0.3 < float(ratio[1]) < 3.0
    with pytest.raises(ConfigError, match="no pruning mask"):
        fan_in_rescale(torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3)), ["0.weight"])
    with pytest.raises(ConfigError, match="unknown prune init_scale"):
        PruneSettings(init_scale="kaiming").validate()
    with pytest.raises(ConfigError, match="applies to PUN-IT .method it. only, not pun-wt"):
        PruneSettings(method="wt", init_scale="fan-in").validate()
    assert PruneSettings(method="wt").init_scale == "none"


def test_train_prune_it_fan_in_init_scale(data, tmp_path):
    out = tmp_path / "it-fan-in"
    args = _train_args(data, out, "--prune", "it", "--density", "0.2", "--prune-search-steps", "2")
    assert main(args + ["--prune-init-scale", "fan-in", "--steps", "1"]) == 0
    card = read_card(out / "model.safetensors")
    assert card.extra["pruning"]["settings"]["init_scale"] == "fan-in"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    (scale,) = [r for r in log if r.get("phase") == "pun-it init scale"]
    assert scale["mean_scale"] > 1.5  # about sqrt(1 / 0.2) = 2.2 per kept channel
    assert scale["channels_kept"] > 0 and scale["channels_empty"] >= 0
