"""Dynamic (2-D + time) data: layout, k-t masks, simulation, methods and ``eval`` on cine."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.core.errors import KSpaceReadError, MaskError, ReconError
from mriviewer.core.io import open_kspace
from mriviewer.core.io.cine import is_cine, open_cine, write_cine
from mriviewer.core.physics.kt_masks import kt_summary, make_kt_mask
from mriviewer.core.physics.masks import MaskSpec


# -- k-t masks -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["random", "equispaced"])
@pytest.mark.parametrize("accel", [4.0, 8.0])
def test_kt_mask_rules(kind, accel):
    spec = MaskSpec(kind=kind, acceleration=accel, center_fraction=0.08, seed=3)
    mask = make_kt_mask(spec, 12, (48, 96))
    assert mask.shape == (12, 48, 96) and mask.dtype == bool
    assert (mask == mask[:, :1]).all()  # 1-D: constant along the readout
    lo = (96 - round(96 * 0.08) + 1) // 2
    assert mask[:, :, lo : lo + round(96 * 0.08)].all()  # the band is in every frame
    summary = kt_summary(mask)
    assert summary["shared_center"][1] >= round(96 * 0.08)
    for r in summary["acceleration_per_frame"]:
        assert abs(r - accel) / accel <= 0.10
    assert abs(summary["acceleration"] - accel) / accel <= 0.10
    assert len({m[0].tobytes() for m in mask}) > 1  # frames differ
    assert summary["union_center"][1] >= summary["shared_center"][1]
    assert np.array_equal(mask, make_kt_mask(spec, 12, (48, 96)))  # reproducible


def test_kt_mask_refusals():
    with pytest.raises(MaskError, match="k-t masks"):
        make_kt_mask(MaskSpec(kind="poisson", acceleration=4), 4, (32, 32))
    with pytest.raises(MaskError, match="calibration band"):
        make_kt_mask(MaskSpec(kind="random", acceleration=8, center_fraction=0.5), 4, (32, 32))
    assert make_kt_mask(MaskSpec(kind="random", acceleration=1), 3, (8, 8)).all()


# -- layout and readers --------------------------------------------------------------------
def test_demo_cine_layout_and_2d_reader_refuses(capsys):
    volume = open_cine("demo-cine")
    assert (volume.num_slices, volume.num_frames, volume.num_coils) == (1, 12, 4)
    assert volume.matrix == (64, 64) and volume.has_reference
    kspace = volume.read_kspace(0)
    assert kspace.shape == (12, 4, 64, 64) and kspace.dtype == np.complex64
    assert volume.read_reference(0).shape == (12, 64, 64)
    record = volume.header["simulation"]
    assert record["settings"]["seed"] == 0 and record["motion"]["frames"] == 12
    assert is_cine("demo-cine") and not is_cine("demo")
    with pytest.raises(KSpaceReadError, match="cine"):
        open_kspace("demo-cine")
    assert main(["info", "demo-cine", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dynamic"] and info["frames"] == 12 and info["coils"] == 4


def test_npy_cine_axes_and_write_roundtrip(tmp_path):
    data = open_cine("demo-cine").read_kspace(0)[:4]
    npy = tmp_path / "cine.npy"
    np.save(npy, np.ascontiguousarray(data.transpose(2, 3, 1, 0)))  # H W C T
    volume = open_cine(npy, axes="HWCT")
    assert volume.num_frames == 4 and np.array_equal(volume.read_kspace(0), data)
    assert is_cine(npy, "HWCT") and not is_cine(npy)
    with pytest.raises(KSpaceReadError, match="axes"):
        open_cine(npy, axes="HWCS")
    mask = np.zeros((4, 64, 64), dtype=bool)
    mask[:, :, ::2] = True
    path = write_cine(tmp_path / "u.h5", data * mask[:, None], mask=mask)
    again = open_cine(path)
    assert np.array_equal(again.mask, mask) and not again.has_reference
    with h5py.File(path) as h5:
        assert h5["kspace"].shape == (1, 4, 4, 64, 64) and h5.attrs["dynamic"]


# -- simulation ----------------------------------------------------------------------------
def test_simulate_dynamic_splits(tmp_path, capsys):
    rng = np.random.default_rng(0)
    vol = np.zeros((24, 24, 3), dtype=np.float32)
    vol[6:18, 5:19] = 1 + rng.random((12, 14, 3))
    src = tmp_path / "vol.npy"
    np.save(src, vol)
    out = tmp_path / "out"
    code = main(
        ["simulate", str(src), str(out), "--dynamic", "--frames", "4", "--matrix", "32x32",
         "--coils", "2", "--snr", "30", "--seed", "5", "--split", "train:0:2",
         "--split", "test:2:3"]
    )  # fmt: skip
    assert code == 0 and "cine kspace (2, 4, 2, 32, 32)" in capsys.readouterr().out
    train = open_cine(out / "train" / "vol_cine_train.h5")
    test = open_cine(out / "test" / "vol_cine_test.h5")
    assert train.num_slices == 2 and test.num_slices == 1 and train.num_frames == 4
    record = train.header["simulation"]
    assert record["settings"]["seed"] == 5 and record["settings"]["coils"] == 2
    assert record["settings"]["snr"] == 30 and record["motion"]["frames"] == 4
    assert set(record["slice_indices"]).isdisjoint(test.header["simulation"]["slice_indices"])
    ref = train.read_reference(0)
    assert not np.allclose(ref[0], ref[1])  # it moves
    capsys.readouterr()
    assert main(["simulate", str(src), str(out), "--dynamic", "--split", "a:0:2",
                 "--split", "b:1:3"]) != 0  # fmt: skip
    assert "overlap" in capsys.readouterr().err


# -- methods and eval ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def problem():
    from mriviewer.core.cine import prepare_cine_problem

    volume = open_cine("demo-cine")
    mask = make_kt_mask(MaskSpec(kind="random", acceleration=4, seed=0), 12, volume.matrix)
    return prepare_cine_problem(volume.read_kspace(0), mask, volume.read_reference(0))


def test_cine_methods_stream(problem):
    from mriviewer.core.cine import get_cine_method, stream_cine

    assert problem.coil_maps.shape == (4, 64, 64) and problem.reference.shape == (12, 64, 64)
    zf = list(stream_cine(get_cine_method("zero-filled"), problem))
    cg = list(stream_cine(get_cine_method("cg-sense", max_iter=3), problem))
    kt = list(stream_cine(get_cine_method("kt-l1", max_iter=4), problem))
    assert len(zf) == 1 and zf[0].final and zf[0].image.shape == (12, 64, 64)
    assert [r.iteration for r in kt] == [0, 1, 2, 3, 4] and kt[-1].final
    assert not any(r.final for r in kt[:-1]) and cg[-1].final
    assert np.allclose(cg[0].image, zf[0].image, atol=1e-3 * np.abs(zf[0].image).max())
    assert len(kt[-1].metrics["psnr_per_frame"]) == 12
    assert kt[-1].metrics["psnr"] > kt[0].metrics["psnr"]
    with pytest.raises(ReconError, match="cine methods"):
        get_cine_method("l1-wavelet")


def test_cine_sense_reference_per_frame(problem):
    from mriviewer.core.cine import prepare_cine_problem

    volume = open_cine("demo-cine")
    sense = prepare_cine_problem(
        volume.read_kspace(0), problem.mask, reference_kind="sense", source="demo-cine"
    )
    assert sense.reference.shape == (12, 64, 64) and sense.reference_kind == "sense"
    assert not np.allclose(sense.reference, problem.reference)


def test_eval_demo_cine_ordering_at_r8(tmp_path, capsys):
    out = tmp_path / "cine.json"
    code = main(["eval", "demo-cine", "--accel", "8", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    case = result["cases"]["demo-cine"]
    assert set(case) == {"zero-filled", "cg-sense", "kt-l1"}
    for metrics in case.values():
        assert set(metrics) == {"psnr", "ssim", "nmse", "seconds"}
    # measured (README): zero-filled 17.8, cg-sense 19.6, kt-l1 22.5 dB; margins >= 0.9 dB on
    # seeds 0-4
    assert case["kt-l1"]["psnr"] > case["cg-sense"]["psnr"] + 1.0
    assert case["cg-sense"]["psnr"] > case["zero-filled"]["psnr"] + 0.5
    assert case["kt-l1"]["ssim"] > case["cg-sense"]["ssim"] > case["zero-filled"]["ssim"]
    info = result["settings"]["cases"]["demo-cine"]
    assert abs(info["achieved_acceleration"] - 8) < 0.8 and info["frames"] == 12
    assert len(info["psnr_per_frame"]["kt-l1"]) == 12
    capsys.readouterr()
    assert main(["eval", "demo-cine", "--mask", "poisson"]) != 0
    assert "k-t mask" in capsys.readouterr().err


def test_eval_cine_npy_and_mixed_refused(tmp_path, capsys):
    data = open_cine("demo-cine").read_kspace(0)[:6]
    npy = tmp_path / "cine.npy"
    np.save(npy, data)  # T C H W
    out = tmp_path / "npy.json"
    code = main(["eval", str(npy), "--axes", "TCHW", "--accel", "4", "--methods",
                 "zero-filled,kt-l1", "--json", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["cases"]["cine.npy"]) == {"zero-filled", "kt-l1"}
    assert result["settings"]["cases"]["cine.npy"]["frames"] == 6
    capsys.readouterr()
    assert main(["eval", "demo-cine", "demo"]) != 0
    assert "cine and 2-D" in capsys.readouterr().err


def test_cine_coil_maps_calibrate_on_the_shared_band_when_the_union_mixes_frames():
    """Random R 4 k-t masks sample most central columns in a few frames each: maps from that
    union's time average put CG-SENSE 4.5 dB below zero-filled on demo-cine (seed 2); the band
    every frame shares gives CG-SENSE above zero-filled. At R 8 the union is kept."""
    from mriviewer.core.cine import get_cine_method, prepare_cine_problem, stream_cine

    volume = open_cine("demo-cine")
    kspace, reference = volume.read_kspace(0), volume.read_reference(0)
    for accel, seed, shared in ((4, 2, True), (4, 0, True), (8, 0, False)):
        mask = make_kt_mask(MaskSpec(kind="random", acceleration=accel, seed=seed), 12, (64, 64))
        problem = prepare_cine_problem(kspace, mask, reference)
        *_, zf = stream_cine(get_cine_method("zero-filled"), problem)
        *_, cg = stream_cine(get_cine_method("cg-sense"), problem)
        assert cg.metrics["psnr"] > zf.metrics["psnr"] + 1.0, (accel, seed)
        assert ("shared by every frame" in problem.info["calibration"]) is shared
        assert any("sampled in every frame" in w for w in problem.warnings) is shared
