"""``mriviewer eval`` and ``mriviewer recon`` as a user runs them."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.commands.common import mask_from_args, method_options, parse_slices
from mriviewer.core.errors import ConfigError, MaskError
from mriviewer.core.io import write_fastmri
from tests.conftest import phantom_case

MASK = ["--mask", "random", "--accel", "4", "--center-fraction", "0.08"]


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    """A fully sampled 2-slice, 8-coil, 64 x 64 fastMRI file with a reference."""
    slices = [phantom_case(64, 64, coils=8, seed=s)[0] for s in (0, 1)]
    path = tmp_path_factory.mktemp("data") / "phantom.h5"
    write_fastmri(path, np.stack(slices))
    return path


def test_eval_json_has_exact_keys(phantom_file, tmp_path, capsys):
    out = tmp_path / "res.json"
    code = main(
        ["eval", str(phantom_file), "--methods", "zero-filled,cg-sense,l1-wavelet", *MASK,
         "--seed", "0", "--json", str(out), "--method-option", "l1-wavelet.max_iter=15"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "l1-wavelet" in printed and f"wrote {out}" in printed
    result = json.loads(out.read_text())
    assert set(result) == {"cases", "settings", "failures"} and result["failures"] == []
    assert list(result["cases"]) == ["phantom.h5"]
    case = result["cases"]["phantom.h5"]
    assert list(case) == ["zero-filled", "cg-sense", "l1-wavelet"]
    for metrics in case.values():
        assert set(metrics) == {"psnr", "ssim", "nmse", "seconds"}
        assert all(isinstance(v, float) for v in metrics.values())
    assert case["cg-sense"]["psnr"] > case["zero-filled"]["psnr"]
    assert case["l1-wavelet"]["psnr"] > case["zero-filled"]["psnr"]
    settings = result["settings"]
    assert settings["methods"] == ["zero-filled", "cg-sense", "l1-wavelet"]
    assert settings["method_settings"]["l1-wavelet"]["max_iter"] == 15
    assert settings["cases"]["phantom.h5"]["slices"] == [0, 1]
    assert settings["seed"] == 0 and settings["accel"] == 4.0


def test_eval_demo_classical_beat_zero_filled(capsys):
    code = main(
        ["eval", "demo", "--methods", "zero-filled,cg-sense,l1-wavelet", *MASK, "--seed", "0",
         "--slices", "0"]
    )  # fmt: skip
    assert code == 0
    rows = {
        line.split()[1]: float(line.split()[2])
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("demo ")
    }
    assert rows["cg-sense"] > rows["zero-filled"] + 2
    assert rows["l1-wavelet"] > rows["zero-filled"] + 2


def test_recon_writes_h5_and_npy(phantom_file, tmp_path, capsys):
    out = tmp_path / "rec.h5"
    code = main(
        ["recon", str(phantom_file), "--slice", "1", "--method", "cg-sense", *MASK, "--seed",
         "0", "--out", str(out), "--method-option", "lambda=0.01", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "cg-sense on phantom.h5 slice 1" in printed and "PSNR" in printed
    with h5py.File(out, "r") as h5:
        rec = h5["reconstruction"][()]
        rec_c = h5["reconstruction_complex"][()]
        ref = h5py.File(phantom_file, "r")["reconstruction_rss"][1]
        assert rec.shape == (1, 64, 64) and rec.dtype == np.float32
        np.testing.assert_allclose(rec, np.abs(rec_c), rtol=1e-5)
        assert h5.attrs["method"] == "cg-sense"
        assert json.loads(h5.attrs["method_settings"])["lamda"] == 0.01
        mask = json.loads(h5.attrs["mask"])
        assert mask["spec"]["kind"] == "random" and mask["spec"]["seed"] == 0
        assert h5.attrs["achieved_acceleration"] == pytest.approx(mask["achieved_acceleration"])
        metrics = json.loads(h5.attrs["metrics"])
        assert metrics["psnr"] > 20
        assert h5["mask"].shape == (64, 64)
    # Original units: the reconstruction is on the reference's scale.
    assert np.abs(rec[0]).max() == pytest.approx(ref.max(), rel=0.2)
    npy = tmp_path / "rec.npy"
    assert main(["recon", str(phantom_file), "--method", "zero-filled", "--out", str(npy)]) == 0
    image = np.load(npy, allow_pickle=False)
    assert image.shape == (64, 64) and image.dtype == np.complex64


def test_recon_with_mask_file(phantom_file, tmp_path, capsys):
    mask = np.zeros((64, 64), dtype=bool)
    mask[:, ::2] = True
    mask[:, 26:38] = True
    np.save(tmp_path / "m.npy", mask)
    out = tmp_path / "r.h5"
    code = main(
        ["recon", str(phantom_file), "--method", "zero-filled", "--mask", str(tmp_path / "m.npy"),
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    with h5py.File(out, "r") as h5:
        np.testing.assert_array_equal(h5["mask"][()].astype(bool), mask)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d: ["--mask", str(d / "empty.npy")], "not a readable .npy mask"),
        (lambda d: ["--mask", str(d / "wrong.npy")], "does not match k-space shape"),
        (lambda d: ["--mask", str(d / "zeros.npy")], "samples no k-space point"),
        (lambda d: ["--mask", str(d / "missing.npy")], "mask file not found"),
        (lambda d: ["--mask", "spiral"], "unknown mask 'spiral'"),
        (lambda d: ["--accel", "0.5"], "acceleration must be"),
        (lambda d: ["--method", "magic"], "unknown method 'magic'"),
        (lambda d: ["--method-option", "mu=2"], "unknown setting"),
        (lambda d: ["--method-option", "oops"], "KEY=VALUE"),
        (lambda d: ["--slice", "7"], "slice 7 out of range"),
    ],
)
def test_recon_bad_settings_exit_cleanly(phantom_file, tmp_path, capsys, make_args, message):
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "wrong.npy", np.ones((32, 64), dtype=bool))
    np.save(tmp_path / "zeros.npy", np.zeros((64, 64), dtype=bool))
    out = tmp_path / "o.h5"
    code = main(["recon", str(phantom_file), "--out", str(out), *make_args(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("mriviewer: error:") and message in err
    assert "Traceback" not in err
    assert not out.exists()


def test_eval_bad_inputs_exit_cleanly(phantom_file, tmp_path, capsys):
    assert main(["eval", str(phantom_file), "--methods", "zero-filled,nope"]) == 1
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "none.h5")]) == 1
    assert "file not found" in capsys.readouterr().err
    under = np.stack([phantom_case(32, 32, coils=4)[0]])
    under[..., ::2] = 0
    write_fastmri(tmp_path / "under.h5", under)
    assert main(["eval", str(tmp_path / "under.h5"), "--methods", "zero-filled"]) == 1
    assert "not fully sampled" in capsys.readouterr().err
    assert main(["eval", str(phantom_file), "--slices", "5:9"]) == 1
    assert "selects no slice" in capsys.readouterr().err
    # a cine model on 2-D files: refused up front, once, for every file (not per case)
    files = [str(phantom_file), str(tmp_path / "under.h5")]
    assert main(["eval", *files, "--methods", "zero-filled,model:cine-dense"]) == 1
    err = capsys.readouterr().err
    assert err.count("model:cine-dense: cine model(s) (denoiser over time)") == 1
    assert "every case failed" not in err and "not fully sampled" not in err


def test_default_seed_is_stable_per_file_and_slice():
    args = argparse.Namespace(mask="random", accel=4.0, center_fraction=0.08, calib=20, seed=None)
    a0 = mask_from_args(args, (32, 64), "/data/a.h5", 0).array
    assert np.array_equal(a0, mask_from_args(args, (32, 64), "/elsewhere/a.h5", 0).array)
    assert not np.array_equal(a0, mask_from_args(args, (32, 64), "/data/a.h5", 1).array)
    args.mask = "data"
    with pytest.raises(MaskError):
        mask_from_args(args, (32, 64), "a.h5", 0)


def test_option_and_slice_parsing():
    items = ["lamda=0.01", "l1-wavelet.max_iter=20", "cg-sense.tol=1e-4", "wavelet=haar"]
    assert method_options(items, "l1-wavelet") == {
        "lamda": 0.01,
        "max_iter": 20,
        "wavelet": "haar",
    }
    assert method_options(items, "cg-sense", only_targeted=True) == {"tol": 1e-4}
    assert parse_slices("all", 3) == [0, 1, 2]
    assert parse_slices("-1", 3) == [2]
    assert parse_slices("1:", 3) == [1, 2]
    with pytest.raises(ConfigError):
        parse_slices("x", 3)


def test_recon_on_real_undersampled_data(shared_data, tmp_path, capsys):
    ksp = shared_data / "brain8ch_undersampled_sigpy" / "cartesian_ksp.npy"
    out = tmp_path / "brain.npy"
    code = main(
        ["recon", str(ksp), "--method", "cg-sense", "--mask", "data", "--coil-method", "lowres",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert "mask data" in capsys.readouterr().out
    image = np.abs(np.load(out, allow_pickle=False))
    assert image.shape == (230, 180) and np.isfinite(image).all() and image.max() > 0


def test_recon_keeps_sampling_of_undersampled_input(tmp_path, capsys):
    under = np.stack([phantom_case(32, 32, coils=4)[0]])
    keep = np.zeros(32, dtype=bool)
    keep[::3] = True
    keep[12:20] = True
    under[..., ~keep] = 0
    write_fastmri(tmp_path / "under.h5", under)
    out = tmp_path / "r.h5"
    assert (
        main(["recon", str(tmp_path / "under.h5"), "--method", "zero-filled", "--out", str(out)])
        == 0
    )
    assert "mask data R=" in capsys.readouterr().out
    with h5py.File(out, "r") as h5:
        np.testing.assert_array_equal(h5["mask"][()].astype(bool), np.broadcast_to(keep, (32, 32)))
        assert json.loads(h5.attrs["mask"])["kind"] == "data"


def test_eval_warns_once_per_case_when_a_model_runs_outside_its_training_acceleration(capsys):
    """As recon does: dense-n4's card says R 4; eval at R 8 says so once for the case, at R 4
    it says nothing (cine models too: cine-dense, trained at R 8, at --accel 4)."""
    assert main(["eval", "demo", "--methods", "zero-filled,model:dense-n4", "--accel", "8"]) == 0
    err = capsys.readouterr().err
    assert err.count("model:dense-n4 was trained at R 4 (its card); this mask is R") == 1
    assert main(["eval", "demo", "--methods", "model:dense-n4"]) == 0
    assert "was trained at" not in capsys.readouterr().err
    assert main(["eval", "demo-cine", "--methods", "model:cine-dense", "--accel", "4"]) == 0
    assert "model:cine-dense was trained at R 8 (its card)" in capsys.readouterr().err


def test_eval_says_what_an_auto_setting_became(tmp_path, capsys):
    """CG-SENSE's lamda "auto" on a 2-D mask: eval prints and records the value used."""
    out = tmp_path / "p.json"
    assert main(["eval", "demo", "--methods", "cg-sense", "--mask", "poisson", "--json",
                 str(out)]) == 0  # fmt: skip
    assert "cg-sense: lamda auto resolved to 0.015" in capsys.readouterr().out
    settings = json.loads(out.read_text())["settings"]
    assert settings["method_settings"]["cg-sense"]["lamda"] == "auto"
    assert settings["cases"]["demo"]["resolved"]["cg-sense"] == {"lamda": 0.015}
