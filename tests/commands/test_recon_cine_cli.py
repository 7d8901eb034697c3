"""``mriviewer recon`` and ``mriviewer convert`` on cine (2-D + time) inputs, as a user runs them.

- ``recon demo-cine`` writes the whole series (``.h5`` read back by ``read_recon_h5`` with a
  frames axis, ``.npy``, 4-D ``.nii.gz``, ``.gif``) and its metrics equal those ``eval
  demo-cine`` reports for the same k-t mask (same seed) to 1e-6;
- an undersampled cine input is reconstructed with its own k-t sampling, without PSNR;
- ``convert`` writes the cine layout and round-trips (k-space, reference, mask);
- a wrong output suffix is a one-line error.
"""

from __future__ import annotations

import json

import h5py
import nibabel as nib
import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.core.export import read_recon_h5
from mriviewer.core.io.cine import open_cine, write_cine

SEED = "3"
FRAMES = 12
METHODS = ("zero-filled", "cg-sense")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def eval_result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("eval") / "e.json"
    code = main(["eval", "demo-cine", "--methods", ",".join(METHODS), "--seed", SEED,
                 "--json", str(out)])  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("method", METHODS)
def test_recon_demo_cine_h5_matches_eval(method, eval_result, tmp_path, capsys):
    out = tmp_path / "r.h5"
    code, stdout, _ = run(capsys, "recon", "demo-cine", "--method", method, "--seed", SEED,
                          "--out", str(out))  # fmt: skip
    assert code == 0
    assert f"{method} on demo_cine.h5 slice 0, {FRAMES} frames" in stdout
    # the cine default is R 8 per frame, as in the app (eval's and recon's alike)
    assert "k-t mask random R=8.00" in stdout and "PSNR" in stdout and f"wrote {out}" in stdout
    read = read_recon_h5(out)
    assert read["frames"] == FRAMES
    entry = read["methods"][method]
    assert entry["final"].shape == (FRAMES, 64, 64)
    assert read["mask"].shape == (FRAMES, 64, 64)
    assert np.allclose(read["mask"].reshape(FRAMES, -1).mean(axis=1), 0.125)
    assert eval_result["settings"]["accel"] == 8.0
    attrs = read["attrs"]
    assert attrs["dynamic"] and int(attrs["frames"]) == FRAMES and attrs["reference"] == "rss"
    assert json.loads(attrs["mask"])["spec"]["seed"] == int(SEED)
    assert json.loads(attrs["mask"])["spec"]["seed_from"] == "--seed"
    metrics = entry["metrics"]
    assert metrics == json.loads(attrs["metrics"])
    assert len(metrics["psnr_per_frame"]) == len(metrics["ssim_per_frame"]) == FRAMES
    expected = eval_result["cases"]["demo-cine"][method]
    for key in ("psnr", "ssim", "nmse"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-6)
    per_frame = eval_result["settings"]["cases"]["demo-cine"]["psnr_per_frame"][method]
    assert metrics["psnr_per_frame"] == pytest.approx(per_frame, abs=1e-6)
    with h5py.File(out) as h5:
        assert h5["reconstruction"].shape == (1, FRAMES, 64, 64)


def test_recon_demo_cine_npy_nifti_gif(tmp_path, capsys):
    npy, nii, gif, h5 = (tmp_path / n for n in ("r.npy", "r.nii.gz", "r.gif", "r.h5"))
    for out in (npy, nii, gif, h5):
        code, stdout, _ = run(capsys, "recon", "demo-cine", "--method", "zero-filled",
                              "--out", str(out))  # fmt: skip
        assert code == 0 and f"wrote {out}" in stdout
    series = np.load(npy)
    assert series.shape == (FRAMES, 64, 64) and series.dtype == np.complex64
    assert np.array_equal(series, read_recon_h5(h5)["methods"]["zero-filled"]["final"])
    image = nib.load(nii)
    assert image.shape == (64, 64, 1, FRAMES)
    assert image.header.get_zooms()[3] == 1.0  # demo-cine records no frame interval
    assert np.allclose(image.get_fdata()[:, :, 0, 5], np.abs(series[5]), rtol=1e-6)
    assert gif.stat().st_size > 0
    assert json.loads((tmp_path / "r.gif.json").read_text())["frames"] == FRAMES


def test_recon_cine_npy_input_with_axes(tmp_path, capsys):
    data = open_cine("demo-cine").read_kspace(0)[:4]
    source = tmp_path / "cine.npy"
    np.save(source, data)
    out = tmp_path / "r.npy"
    code, stdout, _ = run(capsys, "recon", str(source), "--axes", "TCHW", "--method",
                          "zero-filled", "--out", str(out))  # fmt: skip
    assert code == 0 and "4 frames" in stdout
    assert "PSNR" in stdout  # fully sampled: the RSS per frame is the reference
    assert np.load(out).shape == (4, 64, 64)


def test_recon_and_convert_bart_time_input(tmp_path, capsys):
    from tests.core.io.test_io_readers import write_bart

    data = open_cine("demo-cine").read_kspace(0)[:4]  # (T, C, H, W)
    bart = np.zeros((64, 64, 1, 4) + (1,) * 6 + (4,), np.complex64)  # TIME is dim 10
    bart[:, :, 0, :, 0, 0, 0, 0, 0, 0, :] = data.transpose(2, 3, 1, 0)
    hdr, _ = write_bart(tmp_path / "cine", bart)
    out = tmp_path / "r.h5"
    code, stdout, _ = run(capsys, "recon", str(hdr), "--method", "cg-sense", "--seed", "0",
                          "--out", str(out))  # fmt: skip
    assert code == 0 and "cine.hdr slice 0, 4 frames" in stdout and "PSNR" in stdout
    assert read_recon_h5(out)["methods"]["cg-sense"]["final"].shape == (4, 64, 64)
    code, stdout, _ = run(capsys, "convert", str(hdr), str(tmp_path / "c.h5"))
    assert code == 0 and "from cine-bart file" in stdout
    assert np.array_equal(open_cine(tmp_path / "c.h5").read_kspace(0), data)


@pytest.fixture(scope="module")
def undersampled(tmp_path_factory):
    from mriviewer.core.physics.kt_masks import make_kt_mask
    from mriviewer.core.physics.masks import MaskSpec

    root = tmp_path_factory.mktemp("under")
    data = open_cine("demo-cine").read_kspace(0)[:6]
    spec = MaskSpec(kind="random", acceleration=4, center_fraction=0.16, seed=1)
    mask = make_kt_mask(spec, 6, data.shape[-2:])
    with_mask = write_cine(root / "with_mask.h5", data * mask[:, None], mask=mask)
    zeros = write_cine(root / "zeros.h5", data * mask[:, None], mask=mask)
    with h5py.File(zeros, "a") as h5:
        del h5["mask"]
    return {"with_mask": with_mask, "zeros": zeros, "mask": mask}


def test_recon_undersampled_cine_has_no_psnr(undersampled, tmp_path, capsys):
    out = tmp_path / "u.h5"
    code, stdout, err = run(capsys, "recon", str(undersampled["zeros"]), "--method", "cg-sense",
                            "--out", str(out))  # fmt: skip
    assert code == 0
    assert "k-t mask data R=4.00" in stdout and "no ground truth" in stdout
    assert "PSNR" not in stdout and "no ground truth, no PSNR" in err
    read = read_recon_h5(out)
    attrs = read["attrs"]
    assert "metrics" not in attrs and attrs["reference"] == "none"
    gt_free = json.loads(attrs["ground_truth_free"])
    assert 0 < gt_free["dc_residual"] < 1 and "rel_change" in gt_free
    assert len(gt_free["dc_residual_per_frame"]) == 6
    assert np.array_equal(read["mask"], undersampled["mask"])
    assert not {"psnr", "ssim", "psnr_per_frame"} & set(read["methods"]["cg-sense"]["metrics"])
    # a drawn mask asked for on undersampled data: its own sampling is used, and said so
    code, _, err = run(capsys, "recon", str(undersampled["with_mask"]), "--mask", "random",
                       "--method", "zero-filled", "--out", str(tmp_path / "u.npy"))  # fmt: skip
    assert code == 0 and "its own k-t sampling is the mask" in err


def test_convert_cine_round_trip(undersampled, tmp_path, capsys):
    out = tmp_path / "c.h5"
    code, stdout, _ = run(capsys, "convert", "demo-cine", str(out))
    assert code == 0 and "cine HDF5, 1 slice(s) x 12 frame(s) x 4 coil(s)" in stdout
    source, copy = open_cine("demo-cine"), open_cine(out)
    assert copy.format == "cine-h5" and copy.mask is None
    assert (copy.num_slices, copy.num_frames, copy.recon_matrix) == (1, 12, source.recon_matrix)
    assert np.array_equal(copy.read_kspace(0), source.read_kspace(0))
    assert np.array_equal(copy.read_reference(0), source.read_reference(0))
    assert copy.header["acquisition"] == source.header["acquisition"]
    for name in ("with_mask", "zeros"):  # the input's own sampling is stored as the mask
        out = tmp_path / f"{name}.h5"
        code, stdout, _ = run(capsys, "convert", str(undersampled[name]), str(out))
        assert code == 0 and "own k-t mask, R 4.00" in stdout and "reference: none" in stdout
        copy = open_cine(out)
        assert np.array_equal(copy.mask, undersampled["mask"]) and not copy.has_reference
        assert np.array_equal(copy.read_kspace(0), open_cine(undersampled[name]).read_kspace(0))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["recon", "demo-cine", "--out", "{tmp}/x.png"], ["'x.png'", ".nii.gz", ".dcm"]),
        (["recon", "demo-cine", "--out", "{tmp}/x.txt"], ["'x.txt'", ".gif or .mp4"]),
        (["convert", "demo-cine", "{tmp}/x.npy"], ["x.npy", ".h5"]),
    ],
)
def test_bad_output_suffix_is_one_line(argv, words, tmp_path, capsys):
    code, _, err = run(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert all(w in err for w in words)
    assert list(tmp_path.iterdir()) == []


def test_recon_warns_when_a_model_runs_outside_its_training_acceleration(tmp_path, capsys):
    """cine-dense's card says R 8: --accel 4 on demo-cine gets a warning line; recon's cine
    default, R 8 (the app's), does not (the same check covers 2-D models)."""
    out = tmp_path / "m.h5"
    assert main(["recon", "demo-cine", "--method", "model:cine-dense", "--accel", "4",
                 "--out", str(out)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "model:cine-dense was trained at R 8 (its card); this mask is R 4.00" in err
    assert main(["recon", "demo-cine", "--method", "model:cine-dense", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "was trained at" not in captured.err and "k-t mask random R=8.00" in captured.out


def test_virtual_coils_on_cine_compress_every_frame_with_one_svd(eval_result, tmp_path, capsys):
    """--virtual-coils V on demo-cine (4 coils): eval and recon compress the sampled k-space to
    V virtual coils with one SVD over all frames (it used to be refused by recon and silently
    ignored by eval); the reference stays the physical coils' RSS. 2 virtual coils keep 94% of
    the energy; with 3, CG-SENSE (at the cine default R 8) stays within 1 dB of the 4-coil
    result."""
    from mriviewer.core.cine import prepare_cine_problem
    from mriviewer.core.physics.kt_masks import make_kt_mask
    from mriviewer.core.physics.masks import MaskSpec

    volume = open_cine("demo-cine")
    kspace = volume.read_kspace(0)
    mask = make_kt_mask(MaskSpec("random", 4.0, 0.08, seed=3), volume.num_frames, volume.matrix)
    full = prepare_cine_problem(kspace, mask, volume.read_reference(0))
    four = prepare_cine_problem(kspace, mask, volume.read_reference(0), virtual_coils=2)
    assert full.kspace.shape[1] == 4 and four.kspace.shape == (FRAMES, 2, 64, 64)
    assert four.coil_maps.shape[-3] == 2 and "virtual_coils" not in full.info
    assert four.info["virtual_coils"]["from"] == 4 and four.info["virtual_coils"]["to"] == 2
    assert 0.9 < four.info["virtual_coils"]["energy"] < 1.0
    np.testing.assert_array_equal(four.reference, full.reference)
    out = tmp_path / "e.json"
    assert main(["eval", "demo-cine", "--methods", "cg-sense", "--seed", SEED,
                 "--virtual-coils", "3", "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["settings"]["virtual_coils"] == 3
    psnr4 = result["cases"]["demo-cine"]["cg-sense"]["psnr"]
    psnr8 = eval_result["cases"]["demo-cine"]["cg-sense"]["psnr"]
    assert psnr4 != psnr8 and abs(psnr4 - psnr8) < 1.0
    rec = tmp_path / "r.h5"
    code, stdout, _ = run(capsys, "recon", "demo-cine", "--method", "cg-sense", "--seed", SEED,
                          "--virtual-coils", "3", "--out", str(rec))  # fmt: skip
    assert code == 0 and "note: coil compression: 4 -> 3 virtual coils (" in stdout
    attrs = read_recon_h5(rec)["attrs"]
    assert json.loads(attrs["virtual_coils"])["to"] == 3
    assert read_recon_h5(rec)["methods"]["cg-sense"]["metrics"]["psnr"] == pytest.approx(
        psnr4, abs=1e-6
    )


def test_foreground_metrics_on_cine_in_eval_and_recon(eval_result, tmp_path, capsys):
    """--metrics-region foreground on demo-cine (refused before): eval and recon give the same
    figures over each reference frame's foreground, different from the whole-image ones."""
    out = tmp_path / "e.json"
    assert main(["eval", "demo-cine", "--methods", "cg-sense", "--seed", SEED,
                 "--metrics-region", "foreground", "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    settings = result["settings"]
    assert settings["metrics_region"] == "foreground"
    assert "foreground" in settings["reference_definition"]
    fg = result["cases"]["demo-cine"]["cg-sense"]
    whole = eval_result["cases"]["demo-cine"]["cg-sense"]
    assert abs(fg["psnr"] - whole["psnr"]) > 0.1
    rec = tmp_path / "r.h5"
    code, stdout, _ = run(capsys, "recon", "demo-cine", "--method", "cg-sense", "--seed", SEED,
                          "--metrics-region", "foreground", "--out", str(rec))  # fmt: skip
    assert code == 0 and "(vs rss reference per frame, foreground)" in stdout
    read = read_recon_h5(rec)
    metrics = read["methods"]["cg-sense"]["metrics"]
    for key in ("psnr", "ssim", "nmse"):
        assert metrics[key] == pytest.approx(fg[key], abs=1e-6)
    per_frame = settings["cases"]["demo-cine"]["psnr_per_frame"]["cg-sense"]
    assert metrics["psnr_per_frame"] == pytest.approx(per_frame, abs=1e-6)
    assert len(metrics["ssim_per_frame"]) == FRAMES
    assert read["attrs"]["metrics_region"] == "foreground"


def test_recon_cine_to_dicom_writes_one_image_per_frame_in_one_series(tmp_path, capsys):
    """`recon demo-cine --out cine.dcm`: a DICOM series, one single-frame MR image per frame
    (as scanners store cine), one series UID, temporal positions 1..T, one rescale slope, pixel
    values equal to the series' magnitudes; the lamda CG-SENSE used is in the description."""
    import pydicom

    from mriviewer.core.export import cine_dicom_paths

    out = tmp_path / "cine.dcm"
    npy = tmp_path / "cine.npy"
    common = ["recon", "demo-cine", "--method", "cg-sense", "--seed", SEED]
    code, stdout, _ = run(capsys, *common, "--out", str(out))
    assert code == 0 and not out.exists()
    assert "DICOM MR Image 64x64 series, 12 files cine_frame000.dcm ... cine_frame011.dcm" in stdout
    assert f"wrote {tmp_path} (DICOM MR Image 64x64 series, 12 files" in stdout
    paths = cine_dicom_paths(out, FRAMES)
    assert sorted(tmp_path.iterdir()) == paths
    assert run(capsys, *common, "--out", str(npy))[0] == 0
    magnitude = np.abs(np.load(npy))
    frames = [pydicom.dcmread(p) for p in paths]
    assert len({d.SeriesInstanceUID for d in frames}) == 1
    assert [int(d.InstanceNumber) for d in frames] == list(range(1, FRAMES + 1))
    assert [int(d.TemporalPositionIdentifier) for d in frames] == list(range(1, FRAMES + 1))
    assert {int(d.NumberOfTemporalPositions) for d in frames} == {FRAMES}
    slopes = {float(d.RescaleSlope) for d in frames}
    assert len(slopes) == 1
    slope = slopes.pop()
    for d, expected in zip(frames, magnitude, strict=True):
        stored = d.pixel_array.astype(np.float64) * slope
        np.testing.assert_allclose(stored, expected, atol=slope / 2 + 1e-9)
    assert frames[0].SeriesDescription.startswith("cg-sense lamda=auto(0.003)")
