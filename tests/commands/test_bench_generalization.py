"""`mriviewer bench generalization`: trains dense + PUN-IT (tiny), evaluates 4 settings, writes JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.commands.bench_generalization import add_noise
from mriviewer.core.io import write_fastmri
from mriviewer.core.physics.masks import MaskSpec
from mriviewer.core.training import SliceDataset
from tests.conftest import phantom_case

SIZE = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gen-data")
    for split, seeds in (("train", [0, 1]), ("test", [5])):
        (root / split).mkdir()
        for s in seeds:
            ks = np.stack([phantom_case(SIZE, SIZE, coils=4, seed=10 * s + j)[0] for j in range(2)])
            write_fastmri(root / split / f"case{s}.h5", ks)
    return root


def test_bench_trains_both_models_and_reports_every_setting(data, tmp_path, capsys):
    out = tmp_path / "runs"
    result_json = tmp_path / "gen.json"
    args = ["bench", "generalization", "--train", str(data / "train"), "--test", str(data / "test")]
    args += ["--unrolls", "2", "--features", "4", "--steps", "2", "--search-steps", "2"]
    args += ["--density", "0.1", "--coil-method", "lowres", "--mask", "random"]
    args += ["--center-fraction", "0.16", "--acceleration", "4", "--high-acceleration", "8"]
    args += ["--out", str(out), "--json", str(result_json), "--threads", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for row in ("train: random 4x", "higher R: random 8x", "other mask: equispaced 4x"):
        assert row in printed
    assert "noise 0.05: random 4x" in printed
    assert (
        "PSNR dB mean (std)" in printed
        and "pun-it: density 0.0" in printed
        or "pun-it: density 0.1" in printed
    )
    result = json.loads(result_json.read_text())
    assert len(result["results"]) == 4
    for per_model in result["results"].values():
        assert set(per_model) == {"zero-filled", "dense", "pun-it"}
        for r in per_model.values():
            assert r["slices"] == 2 and math.isfinite(r["psnr_mean"]) and 0 < r["ssim_mean"] <= 1
            assert r["psnr_mean"] == pytest.approx(np.mean(r["psnr"]))
    assert result["models"]["dense"]["density"] == 1.0
    assert result["training"]["steps"] > 0 and "base_setting" not in result
    assert result["models"]["pun-it"]["density"] == pytest.approx(0.1, abs=0.01)
    # noise lowers zero-filled quality, the other settings are distinct masks
    names = list(result["results"])
    zf = {n: result["results"][n]["zero-filled"]["psnr_mean"] for n in names}
    assert zf[names[3]] < zf[names[0]] and zf[names[1]] < zf[names[0]]

    # given models are evaluated without training
    capsys.readouterr()
    again = ["bench", "generalization", "--test", str(data / "test"), "--coil-method", "lowres"]
    again += ["--dense", str(out / "dense"), "--pun", str(out / "pun-it")]
    assert main(again + ["--json", str(result_json)]) == 0
    assert "other mask: equispaced 4x" in capsys.readouterr().out
    given = json.loads(result_json.read_text())
    # the bench did not train these: no "training" block, the setting it varies is named so
    assert "training" not in given and given["base_setting"]["accelerations"] == [4.0]
    assert given["models"]["dense"]["card_accelerations"]


def test_bench_refuses_one_model_only(data, capsys):
    args = ["bench", "generalization", "--test", str(data / "test"), "--dense", "x"]
    assert main(args) == 1
    assert "give both --dense and --pun" in capsys.readouterr().err


def test_add_noise_touches_only_sampled_kspace(data):
    ds = SliceDataset(data / "test", MaskSpec("random", 4.0, 0.16), [4.0], coil_method="lowres")
    sample = ds.validation_sample(0, 4.0)
    noisy = add_noise(sample, 0.1, seed=0)
    diff = noisy.kspace - sample.kspace
    assert np.all(diff[:, ~sample.mask] == 0)
    rms = np.sqrt(np.mean(np.abs(sample.kspace[:, sample.mask]) ** 2))
    assert np.sqrt(np.mean(np.abs(diff[:, sample.mask]) ** 2)) == pytest.approx(0.1 * rms, rel=0.1)
    assert add_noise(sample, 0.0, seed=0) is sample
