"""Structure a reader guesses is checked: MRD encoding spaces, BART layouts, implausible
array layouts refused with one line naming the layout and the option to give another, NaN/Inf
located, and one bad file in a multi-file ``eval`` does not stop the others."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from mriviewer.cli import main
from mriviewer.core.errors import KSpaceReadError, ReconError
from mriviewer.core.io import open_kspace, write_fastmri
from tests.conftest import phantom_case  # noqa: E402
from tests.core.io.test_io_readers import (  # noqa: E402
    ACQUISITION,
    acquisition,
    random_kspace,
    write_bart,
)


def two_encoding_xml(first: tuple[int, int], second: tuple[int, int]) -> str:
    """MRD XML with two ``<encoding>`` elements, encoded = recon matrix (x readout, y lines)."""

    def one(nx: int, ny: int) -> str:
        return (
            f"<encoding><encodedSpace><matrixSize><x>{nx}</x><y>{ny}</y><z>1</z></matrixSize>"
            "</encodedSpace>"
            f"<reconSpace><matrixSize><x>{nx}</x><y>{ny}</y><z>1</z></matrixSize></reconSpace>"
            "<encodingLimits><kspace_encoding_step_1><minimum>0</minimum>"
            f"<maximum>{ny - 1}</maximum><center>{ny // 2}</center></kspace_encoding_step_1>"
            "</encodingLimits><trajectory>cartesian</trajectory></encoding>"
        )

    return (
        '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
        + one(*first)
        + one(*second)
        + "</ismrmrdHeader>"
    )


def write_rows(path: Path, rows: list[np.ndarray], xml: str) -> Path:
    with h5py.File(path, "w") as h5:
        grp = h5.create_group("dataset")
        grp.create_dataset("xml", shape=(1,), dtype=h5py.string_dtype())
        grp["xml"][0] = xml
        grp.create_dataset("data", data=np.concatenate(rows), maxshape=(None,))
    return path


def encoding_rows(kspace: np.ndarray, ref: int) -> list[np.ndarray]:
    """One acquisition per line of ``kspace`` (C, readout, lines) with encoding_space_ref."""
    rows = []
    for ky in range(kspace.shape[2]):
        row = acquisition(kspace[:, :, ky], ky)
        row[0]["head"]["encoding_space_ref"] = ref
        rows.append(row)
    return rows


@pytest.fixture
def two_encodings(tmp_path):
    """Encoding 0: 3 coils x 16 x 16; encoding 1: a different object, 3 x readout x 8 lines,
    interleaved after encoding 0 (as a B0 / low-res reference scan is stored)."""

    def make(readout1: int) -> tuple[Path, np.ndarray, np.ndarray]:
        k0 = random_kspace((3, 16, 16), 1)
        k1 = 10 * random_kspace((3, readout1, 8), 2)
        xml = two_encoding_xml((16, 16), (readout1, 8))
        path = write_rows(
            tmp_path / f"enc_{readout1}.h5", encoding_rows(k0, 0) + encoding_rows(k1, 1), xml
        )
        return path, k0, k1

    return make


@pytest.mark.parametrize("readout1", [16, 8])
def test_mrd_encoding_zero_by_default_not_mixed_with_encoding_one(two_encodings, readout1):
    path, k0, k1 = two_encodings(readout1)
    volume = open_kspace(path)
    # Encoding 1 used to be averaged into encoding 0 (same readout) or refused (other readout).
    np.testing.assert_array_equal(volume.kspace, k0)
    assert volume.header["encoding"] == 0
    assert volume.header["encodings"] == [
        {"index": 0, "acquisitions": 16, "encoded_matrix": [16, 16], "recon_matrix": [16, 16]},
        {
            "index": 1,
            "acquisitions": 8,
            "encoded_matrix": [readout1, 8],
            "recon_matrix": [readout1, 8],
        },
    ]
    assert volume.header["skipped_acquisitions"] == {"other encodings": 8}
    # Encoding 1 alone: 8 lines x (readout1 >= 8) samples.
    other = open_kspace(path, encoding=1)
    assert other.matrix == (readout1, 8)
    np.testing.assert_array_equal(other.kspace, k1)


def test_mrd_encoding_out_of_range_lists_the_encodings(two_encodings):
    path, _, _ = two_encodings(16)
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(path, encoding=2)
    assert str(info.value) == (
        f"{path}: encoding 2 holds no acquisitions; the file's encodings: "
        "0 (16 x 16, 16 acquisitions), 1 (16 x 8, 8 acquisitions) (choose one with --encoding N)"
    )


def test_mrd_implausible_encoding_names_the_option(tmp_path):
    # Encoding 1 holds 4 lines only: reading it would give a 16 x 4 image.
    k0, k1 = random_kspace((3, 16, 16), 1), random_kspace((3, 16, 4), 2)
    path = write_rows(
        tmp_path / "e.h5",
        encoding_rows(k0, 0) + encoding_rows(k1, 1),
        two_encoding_xml((16, 16), (16, 4)),
    )
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(path, encoding=1)
    assert str(info.value) == (
        f"{path}: implausible layout (coils, readout, lines) = (3, 16, 4) of encoding 1: "
        "image axis W has 4 samples (at least 8 needed); choose another encoding with "
        "--encoding N"
    )


def test_info_lists_encodings_and_takes_encoding(two_encodings, capsys):
    path, _, _ = two_encodings(16)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^encodings: +0: 16 x 16, 16 acquisitions \(read\); 1: 16 x 8, 8 acquisitions "
        r"\(choose with --encoding N\)$",
        out,
        re.M,
    )
    assert main(["info", str(path), "--encoding", "1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["matrix"] == [16, 8] and info["header"]["encoding"] == 1
    assert [e["index"] for e in info["header"]["encodings"]] == [0, 1]
    # A reader without encodings refuses the option in one line.
    npy = path.with_suffix(".npy")
    np.save(npy, random_kspace((2, 16, 16)))
    assert main(["info", str(npy), "--encoding", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("npy reader does not take option(s) encoding (it takes variable=, axes=)")
    assert "\n" not in err


# --- BART layouts ----------------------------------------------------------------------------


def test_bart_espirit_layout_is_one_slice(tmp_path):
    k = random_kspace((4, 24, 16))  # (C, H, W)
    hdr, _ = write_bart(tmp_path / "full", np.transpose(k, (1, 2, 0))[None])  # [1, H, W, C]
    volume = open_kspace(hdr)
    assert (volume.num_slices, volume.num_coils, volume.matrix) == (1, 4, (24, 16))
    np.testing.assert_array_equal(volume.kspace, k)
    assert volume.header["bart_layout"] == "READ = 1: 2-D k-space in PHS1 x PHS2"


def test_bart_slices_in_dim13_and_echoes_in_te(tmp_path):
    k = random_kspace((4, 24, 16))
    base = np.transpose(k, (1, 2, 0))[:, :, None, :]  # RO, PE1, PE2=1, COIL
    slices = np.stack([base * (s + 1) for s in range(3)], axis=-1).reshape(
        24, 16, 1, 4, *([1] * 9), 3
    )
    hdr, _ = write_bart(tmp_path / "slices", slices)
    volume = open_kspace(hdr)
    assert (volume.num_slices, volume.matrix) == (3, (24, 16))
    np.testing.assert_allclose(volume.read_kspace(2), 3 * k, rtol=1e-6)
    echoes = np.stack([base, 0.5 * base], axis=-1).reshape(24, 16, 1, 4, 1, 2)
    hdr, _ = write_bart(tmp_path / "te", echoes)
    volume = open_kspace(hdr)
    assert volume.num_slices == 2
    np.testing.assert_allclose(volume.read_kspace(1), 0.5 * k, rtol=1e-6)


def test_bart_degenerate_read_refused(tmp_path):
    # READ = 1 and PHS2 = 1: a single row of 64 samples cannot be an image.
    hdr, _ = write_bart(tmp_path / "row", random_kspace((1, 64, 1, 4)))
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(hdr)
    assert str(info.value) == (
        f"{hdr}: implausible layout BART dims [1 64 1 4] read as (COIL, READ, PHS1): image axis "
        "H has 1 sample (at least 8 needed); BART k-space must hold the image in READ x PHS1 "
        "(or PHS1 x PHS2 with READ = 1) and the coils in dim 3"
    )


# --- plausibility in every inferring reader --------------------------------------------------

AXES_HINT = "give the layout with --axes (letters S C H W, e.g. HWC)"


@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        ((4, 1, 64), "read as (C, H, W): image axis H has 1 sample (at least 8 needed)"),
        ((4, 64, 2), "read as (C, H, W): image axis W has 2 samples (at least 8 needed)"),
        ((1, 64), "read as (H, W): image axis H has 1 sample (at least 8 needed)"),
        ((16, 8, 8), "read as (C, H, W): 16 coils is not fewer than the image size 8 x 8"),
        ((2, 3, 6, 12), "read as (S, C, H, W): image axis H has 6 samples (at least 8 needed)"),
    ],
)
def test_npy_implausible_layout_refused(tmp_path, shape, problem):
    path = tmp_path / "k.npy"
    np.save(path, random_kspace(shape))
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(path)
    dims = ", ".join(str(n) for n in shape)
    assert (
        str(info.value)
        == f"{path}: implausible layout array of shape ({dims}) {problem}; {AXES_HINT}"
    )


def test_axes_gives_the_plausible_reading(tmp_path):
    k = random_kspace((24, 16, 4))  # MATLAB-style [rows, cols, coils]
    path = tmp_path / "k.npy"
    np.save(path, k)
    with pytest.raises(KSpaceReadError, match=r"read as \(C, H, W\): image axis W has 4 samples"):
        open_kspace(path)
    volume = open_kspace(path, axes="HWC")
    assert (volume.num_coils, volume.matrix) == (4, (24, 16))
    np.testing.assert_array_equal(volume.kspace, k.transpose(2, 0, 1))


def test_mat_and_npz_hint_at_variable(tmp_path):
    mat = tmp_path / "k.mat"
    scipy.io.savemat(mat, {"kspace": random_kspace((4, 1, 64))})
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(mat)
    assert str(info.value) == (
        f"{mat}: implausible layout variable 'kspace' of shape (4, 1, 64) read as (C, H, W): "
        f"image axis H has 1 sample (at least 8 needed); {AXES_HINT} or choose another array "
        "with --variable"
    )
    npz = tmp_path / "k.npz"
    np.savez(npz, kspace=random_kspace((4, 64, 2)))
    with pytest.raises(KSpaceReadError, match=r"array 'kspace' of shape \(4, 64, 2\).*--variable$"):
        open_kspace(npz)


def test_fastmri_and_mrd_implausible_layout_refused(tmp_path):
    fast = tmp_path / "f.h5"
    with h5py.File(fast, "w") as h5:
        h5.create_dataset("kspace", data=random_kspace((2, 4, 1, 64)))
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(fast)
    assert str(info.value) == (
        f"{fast}: implausible layout 'kspace' of shape (2, 4, 1, 64) read as (S, C, H, W): image "
        "axis H has 1 sample (at least 8 needed); fastMRI 'kspace' must be (slices, coils, H, W) "
        "or (slices, H, W)"
    )
    # MRD: a single readout sample per line.
    rows = [acquisition(random_kspace((2, 1), ky), ky) for ky in range(16)]
    with h5py.File(tmp_path / "m.h5", "w") as h5:
        grp = h5.create_group("dataset")
        grp.create_dataset("data", data=np.concatenate(rows) if rows else np.zeros(0, ACQUISITION))
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(tmp_path / "m.h5")
    assert str(info.value) == (
        f"{tmp_path / 'm.h5'}: implausible layout (coils, readout, lines) = (2, 1, 16): image "
        "axis H has 1 sample (at least 8 needed); the acquisitions do not form a 2-D Cartesian "
        "image"
    )


def test_core_refuses_size_one_image_axis_before_coil_maps():
    from mriviewer.core.compare import prepare_problem
    from mriviewer.core.physics.coils import estimate_coil_maps

    k = random_kspace((4, 1, 64))
    with pytest.raises(ReconError) as info:
        estimate_coil_maps(k)
    assert str(info.value) == (
        "coil-map estimation needs an image of at least 8 x 8, got 1 x 64 (is an image axis of "
        "the file really a coil or slice axis?)"
    )
    with pytest.raises(ReconError, match=r"1 x 64"):  # refused before coil-map estimation
        prepare_problem(k, np.ones((1, 64), bool))


# --- NaN / Inf located -------------------------------------------------------------------------


def test_nan_message_names_slice_and_coils(tmp_path):
    k = random_kspace((3, 4, 16, 16))
    k[1, 2, 5, 5] = np.nan
    k[1, 2, 6, 5] = np.inf
    k[1, 0, 0, 0] = np.nan
    path = tmp_path / "k.npy"
    np.save(path, k)
    volume = open_kspace(path)  # slice 0 is clean
    with pytest.raises(KSpaceReadError) as info:
        volume.read_kspace(1)
    assert str(info.value) == (
        f"{path}: k-space contains NaN or Inf values in slice 1, coils 0, 2 (3 values)"
    )
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(path, slice=1)
    assert "NaN or Inf values in slice 1, coils 0, 2 (3 values)" in str(info.value)


def test_eval_reports_a_bad_file_and_evaluates_the_others(tmp_path, capsys):
    good = tmp_path / "good.h5"
    write_fastmri(good, phantom_case(32, 32, coils=4, seed=0)[0][None])
    bad = tmp_path / "bad.npy"
    k = phantom_case(32, 32, coils=4, seed=1)[0]
    k[3, 10, 11] = np.nan
    np.save(bad, k)
    out = tmp_path / "res.json"
    code = main(
        ["eval", str(good), str(bad), "--methods", "zero-filled", "--seed", "0",
         "--json", str(out)]
    )  # fmt: skip
    assert code == 1
    captured = capsys.readouterr()
    assert "good.h5" in captured.out and f"wrote {out}" in captured.out
    message = f"{bad}: k-space contains NaN or Inf values in slice 0, coil 3 (1 value)"
    assert captured.err.strip().endswith(f"mriviewer eval: failed: {message}")
    result = json.loads(out.read_text())
    assert list(result["cases"]) == ["good.h5"]
    # The good case's figures are those of evaluating it alone.
    alone = tmp_path / "alone.json"
    args = ["--methods", "zero-filled", "--seed", "0", "--json", str(alone)]
    assert main(["eval", str(good), *args]) == 0
    expected = json.loads(alone.read_text())["cases"]["good.h5"]["zero-filled"]
    got = result["cases"]["good.h5"]["zero-filled"]
    assert {k: got[k] for k in ("psnr", "ssim", "nmse")} == {
        k: expected[k] for k in ("psnr", "ssim", "nmse")
    }
    assert result["failures"] == [{"case": "bad.npy", "file": str(bad), "error": message}]
    assert result["settings"]["cases"]["bad.npy"] == {"file": str(bad), "error": message}
    assert result["settings"]["cases"]["good.h5"]["slices"] == [0]
