"""Saved models: safetensors + JSON card round trip, refusal of mismatches, zoo, model methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mriviewer.cli import main
from mriviewer.core import checkpoints
from mriviewer.core.checkpoints import (
    ModelCard,
    describe_model,
    list_models,
    load_model,
    resolve_model,
    save_model,
)
from mriviewer.core.compare import get_method, prepare_problem
from mriviewer.core.errors import ModelCardError
from mriviewer.core.models import MoDL, UnrolledPGD
from mriviewer.core.physics.masks import MaskSpec, make_mask
from mriviewer.core.recon.model_method import load_model_method
from tests.conftest import phantom_case


@pytest.fixture
def problem():
    kspace, _, _ = phantom_case(32, 32, coils=4)
    mask = make_mask(MaskSpec("random", 4, 0.16, seed=1), (32, 32))
    return prepare_problem(kspace, mask, coil_method="lowres")


def _card() -> ModelCard:
    return ModelCard(
        strategy={"name": "gleam", "unrolls": 2, "modules": 2},
        training_data={"train_dir": "somewhere", "slices": 3},
        mask={"kind": "random", "center_fraction": 0.08},
        accelerations=[4.0],
        loss="l1",
        steps=10,
        validation={"psnr": 30.5, "ssim": 0.8},
    )


@pytest.mark.parametrize(
    "model", [MoDL(num_unrolls=2, features=6, shared=False), UnrolledPGD(2, features=6)]
)
def test_save_load_round_trip_reconstructs_identically(tmp_path, problem, model):
    path = save_model(tmp_path / "net.safetensors", model, _card())
    assert path.is_file() and (tmp_path / "net.json").is_file()
    card = json.loads((tmp_path / "net.json").read_text())
    assert card["architecture"] == model.config()
    assert card["parameters"] == model.parameter_count()
    assert card["strategy"]["modules"] == 2 and card["mriviewer_version"]
    loaded, loaded_card = load_model(path)
    assert loaded_card.validation == {"psnr": 30.5, "ssim": 0.8}
    k = torch.from_numpy(problem.kspace)[None]
    s = torch.from_numpy(problem.coil_maps)[None]
    m = torch.from_numpy(problem.mask)[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded(k, s, m), model(k, s, m), rtol=0, atol=0)
    # folder form
    save_model(tmp_path / "folder", model)
    assert (tmp_path / "folder" / "model.safetensors").is_file()
    load_model(tmp_path / "folder")


def test_mismatched_card_is_refused_naming_the_file(tmp_path):
    path = save_model(tmp_path / "net.safetensors", MoDL(num_unrolls=2, features=6, shared=False))
    card_path = tmp_path / "net.json"
    card = json.loads(card_path.read_text())
    card["architecture"]["features"] = 8
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match=r"net\.safetensors.*shape"):
        load_model(path)
    card["architecture"]["features"] = 6
    card["architecture"]["shared"] = True
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match="unexpected tensors"):
        load_model(path)
    card["architecture"] = {"name": "transformer"}
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match=r"net\.json.*unknown model 'transformer'"):
        load_model(path)
    card_path.write_text("{not json")
    with pytest.raises(ModelCardError, match=r"net\.json.*not valid JSON"):
        load_model(path)
    card_path.unlink()
    with pytest.raises(ModelCardError, match="model card not found"):
        load_model(path)


def test_corrupt_weights_refused(tmp_path):
    path = save_model(tmp_path / "net.safetensors", UnrolledPGD(1, features=4))
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelCardError, match=r"net\.safetensors.*not readable safetensors"):
        load_model(path)


def test_model_method_through_get_method(tmp_path, problem):
    model = MoDL(num_unrolls=3, features=6, shared=False, cg_iters=5)
    path = save_model(tmp_path / "m.safetensors", model, _card())
    method = get_method(f"model:{path}")
    assert method.name == f"model:{path}"
    assert method.settings()["architecture"]["name"] == "modl"
    results = list(method.iterate(problem, device="cpu"))
    assert [r.iteration for r in results] == [0, 1, 2, 3]
    assert [r.final for r in results] == [False, False, False, True]
    assert results[0].image.shape == (32, 32) and results[0].image.dtype == np.complex64
    assert results[-1].extra["card"]["strategy"]["name"] == "gleam"
    # iteration 0 is the SENSE zero-filled image
    zf = list(get_method("zero-filled").iterate(problem))[-1].image
    np.testing.assert_allclose(results[0].image, zf, rtol=1e-5, atol=1e-6)
    # early exit after the first unrolls
    early = list(load_model_method(path, device="cpu", unrolls=1).iterate(problem))
    assert len(early) == 2 and early[-1].final
    np.testing.assert_allclose(early[-1].image, results[1].image, rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="unrolls"):
        load_model_method(path, colour="red")


def test_zoo_listing_and_resolution(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(checkpoints, "zoo_dir", lambda: tmp_path)
    assert list_models() == []
    assert main(["models"]) == 0
    assert "no bundled models" in capsys.readouterr().out
    save_model(tmp_path / "dense.safetensors", MoDL(num_unrolls=2, features=4), _card())
    (tmp_path / "broken.safetensors").write_bytes(b"x")
    models = list_models()
    assert [m["name"] for m in models] == ["broken", "dense"]
    assert "error" in models[0] and models[1]["card"]["architecture"] == "modl"
    assert resolve_model("dense") == tmp_path / "dense.safetensors"
    assert resolve_model("model:dense") == tmp_path / "dense.safetensors"
    with pytest.raises(ModelCardError, match="no bundled model of that name.*dense"):
        resolve_model("gleam")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dense" in out and "modl" in out and "gleam/2" in out and "PSNR 30.5" in out
    assert "broken" in out and "unreadable" in out
    assert "  F " in out.splitlines()[0] and "mean over its ACCEL" in out
    info = describe_model("model:dense")
    assert info["name"] == "dense" and info["parameters"] == MoDL(2, features=4).parameter_count()
    assert info["strategy"]["name"] == "gleam" and info["card"]["loss"] == "l1"
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[1]["name"] == "dense"
    pgleam = _card()
    pgleam.strategy = {"name": "pgleam", "unrolls": 2, "modules": 2, "world_size": 2}
    save_model(tmp_path / "piped.safetensors", MoDL(num_unrolls=2, features=4), pgleam)
    assert main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("piped"))
    assert " pgleam/2 " in row


def test_zoo_states_each_models_data_kind(tmp_path, monkeypatch, capsys):
    """list_models / `mriviewer models` say whether a model is 2-D or cine (denoiser 3d)."""
    monkeypatch.setattr(checkpoints, "zoo_dir", lambda: tmp_path)
    save_model(tmp_path / "dense.safetensors", MoDL(num_unrolls=1, features=4), _card())
    cine = MoDL(num_unrolls=1, features=4, denoiser="3d")
    save_model(tmp_path / "cine-dense.safetensors", cine, _card())
    listed = {m["name"]: m["card"] for m in list_models()}
    assert listed["dense"]["denoiser"] == "2d" and listed["dense"]["dynamic"] is False
    assert listed["cine-dense"]["denoiser"] == "3d" and listed["cine-dense"]["dynamic"] is True
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "ARCH", "DATA", "N"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["dense"][1:4] == ["modl", "2d", "1"]
    assert rows["cine-dense"][1:4] == ["modl", "cine:3d", "1"]
    assert main(["models", "--json"]) == 0
    cards = {m["name"]: m["card"] for m in json.loads(capsys.readouterr().out)}
    assert cards["cine-dense"]["dynamic"] is True and cards["dense"]["denoiser"] == "2d"


def test_unknown_model_method_is_a_clean_error(capsys):
    with pytest.raises(ModelCardError, match="no such model file"):
        get_method("model:/nonexistent/thing.safetensors")


def test_model_method_does_not_leak_inference_mode(tmp_path, problem):
    path = save_model(tmp_path / "m.safetensors", UnrolledPGD(2, features=4))
    for _ in get_method(f"model:{path}").iterate(problem, device="cpu"):
        assert not torch.is_inference_mode_enabled()
        assert torch.is_grad_enabled()


def test_model_path_in_recon_and_eval_commands(tmp_path, capsys):
    from mriviewer.core.io import write_fastmri

    case = write_fastmri(tmp_path / "case.h5", phantom_case(32, 32, coils=4)[0][None])
    weights = save_model(tmp_path / "tiny.safetensors", MoDL(2, features=4, shared=False))
    method = f"model:{weights}"
    out = tmp_path / "r.npy"
    common = ["--coil-method", "lowres", "--device", "cpu"]
    assert main(["recon", str(case), "--method", method, "--out", str(out), *common]) == 0
    assert f"{method} on case.h5" in capsys.readouterr().out
    assert np.load(out).shape == (32, 32)
    assert main(["eval", str(case), "--methods", f"zero-filled,{method}", *common]) == 0
    table = capsys.readouterr().out
    assert "zero-filled" in table and method in table
