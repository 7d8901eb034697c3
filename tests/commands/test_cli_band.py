"""Zero-padded fastMRI files (issue 12 section 4) and mask settings (issue 13 section 2) through
the command line: eval accepts padded files, recon's default mask lives in the acquired band,
info shows the band, warnings and refusals reach the user in one line."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.core.io import write_fastmri
from mriviewer.core.io.fastmri import make_ismrmrd_header
from tests.conftest import phantom_case

PAD = 8
W = 96


def _padded(tmp_path, name: str, how: str):
    """A fully sampled 1-slice, 4-coil 64 x 96 fastMRI file whose outer 8 + 8 columns are zero.

    how: ``attributes`` (padding_left/right file attributes), ``header`` (encoding limits in the
    ISMRMRD header only) or ``none`` (the zeros alone)."""
    kspace = phantom_case(64, W, coils=4, seed=1)[0]
    kspace[..., :PAD] = 0
    kspace[..., W - PAD :] = 0
    attrs = {"acquisition": "CORPD_FBK"}
    xml = None
    if how == "attributes":
        attrs.update(padding_left=PAD, padding_right=W - PAD)
    elif how == "header":
        limits = (
            "<encodingLimits><kspace_encoding_step_1><minimum>0</minimum>"
            f"<maximum>{W - 2 * PAD - 1}</maximum><center>{W // 2 - PAD}</center>"
            "</kspace_encoding_step_1></encodingLimits>"
        )
        xml = make_ismrmrd_header((64, W), (64, 64)).replace("</encoding>", limits + "</encoding>")
    path = tmp_path / name
    write_fastmri(path, kspace[None], recon_matrix=(64, 64), attrs=attrs, header_xml=xml)
    return path


@pytest.mark.parametrize("how", ["attributes", "header", "none"])
def test_eval_accepts_zero_padded_files_and_reports_r_over_the_band(tmp_path, capsys, how):
    path = _padded(tmp_path, "knee.h5", how)  # default seed: stable hash of name and slice
    out = tmp_path / "res.json"
    code = main(["eval", str(path), "--methods", "zero-filled,cg-sense", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result.get("failures", []) == []
    case = result["settings"]["cases"][path.name]
    assert abs(case["achieved_acceleration"] - 4) / 4 <= 0.10
    assert case["warnings"] == []
    psnr = result["cases"][path.name]
    assert psnr["cg-sense"]["psnr"] > psnr["zero-filled"]["psnr"]


def test_recon_default_mask_is_random_r4_inside_the_band(tmp_path, capsys):
    path = _padded(tmp_path, "knee.h5", "attributes")
    out = tmp_path / "rec.h5"
    assert main(["recon", str(path), "--method", "zero-filled", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with h5py.File(out, "r") as h5:
        mask = h5["mask"][()].astype(bool)
        description = json.loads(h5.attrs["mask"])
    assert description["kind"] == "random" and description["band"] == [PAD, W - PAD]
    assert not mask[:, :PAD].any() and not mask[:, W - PAD :].any()
    inside = mask[:, PAD : W - PAD]
    achieved = inside.size / inside.sum()
    assert description["achieved_acceleration"] == pytest.approx(achieved)
    assert abs(achieved - 4) / 4 <= 0.10
    assert f"mask random R={achieved:.2f}" in printed


def test_info_shows_the_acquired_band(tmp_path, capsys):
    path = _padded(tmp_path, "knee.h5", "header")
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "acquired band: columns 8-87 (80 of 96; ISMRMRD header encoding limits)" in lines
    assert main(["info", str(path), "--json"]) == 0
    band = json.loads(capsys.readouterr().out)["acquired_band"]
    assert band == {"start": 8, "stop": 88, "width": 96, "source": "header", "warnings": []}


def test_unreachable_mask_is_one_error_line(tmp_path, capsys):
    kspace = phantom_case(128, 40, coils=2, seed=0)[0]
    path = write_fastmri(tmp_path / "small.h5", kspace[None])
    code = main(
        ["recon", str(path), "--method", "zero-filled", "--mask", "poisson", "--accel", "1.01",
         "--out", str(tmp_path / "r.h5")]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err == (
        "mriviewer: error: poisson: R=1.01 is denser than a Poisson-disc pattern gets on "
        "128 x 40 with a 20 x 20 calibration (R >= about 1.14): use R = 1 for the full mask, a "
        "larger R, or a random or gaussian mask\n"
    )


def test_achieved_r_warning_reaches_stderr_and_json(tmp_path, capsys):
    kspace = phantom_case(64, 75, coils=2, seed=0)[0]
    path = write_fastmri(tmp_path / "w75.h5", kspace[None])
    out = tmp_path / "r.h5"
    code = main(
        ["recon", str(path), "--method", "zero-filled", "--mask", "equispaced", "--seed", "1",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    line = (
        "equispaced mask: achieved R=3.12 misses the requested R=4 by 22% on 64 x 75 "
        "(fastMRI's equispaced rule keeps one line in 4 plus the centre)"
    )
    assert f"warning: {line}" in capsys.readouterr().err.splitlines()
    with h5py.File(out, "r") as h5:
        assert json.loads(h5.attrs["mask"])["warnings"] == [line]
    res = tmp_path / "res.json"
    code = main(
        ["eval", str(path), "--methods", "zero-filled", "--mask", "equispaced", "--seed", "1",
         "--json", str(res)]
    )  # fmt: skip
    assert code == 0
    assert json.loads(res.read_text())["settings"]["cases"]["w75.h5"]["warnings"] == [
        f"slice 0: {line}"
    ]
    assert np.isfinite(json.loads(res.read_text())["cases"]["w75.h5"]["zero-filled"]["psnr"])


def test_eval_refuses_undersampled_padded_file_naming_the_band(tmp_path, capsys):
    path = _padded(tmp_path, "knee.h5", "attributes")
    with h5py.File(path, "r+") as h5:
        kspace = h5["kspace"][()]
        kspace[..., PAD + 1 : W - PAD : 2] = 0  # every other acquired column missing
        h5["kspace"][...] = kspace
    code = main(["eval", str(path), "--methods", "zero-filled"])
    assert code == 1
    err = capsys.readouterr().err
    assert (
        "slice 0 is not fully sampled (50% of k-space points inside the acquired columns 8-87 "
        "(80 of 96; padding_left/padding_right attributes) are non-zero): eval needs fully "
        "sampled data to undersample retrospectively"
    ) in err
    assert "Traceback" not in err


def test_convert_keeps_a_padded_file_fully_sampled_and_records_its_band(tmp_path, capsys):
    kspace = phantom_case(64, W, coils=4, seed=1)[0]
    kspace[..., :PAD] = 0
    kspace[..., W - PAD :] = 0
    source = tmp_path / "knee.npy"
    np.save(source, kspace)
    out = tmp_path / "knee.h5"
    assert main(["convert", str(source), str(out)]) == 0
    assert "100.0% sampled), reference: RSS of the k-space" in capsys.readouterr().out
    with h5py.File(out, "r") as h5:
        assert "reconstruction_rss" in h5
        assert (h5.attrs["padding_left"], h5.attrs["padding_right"]) == (PAD, W - PAD)
