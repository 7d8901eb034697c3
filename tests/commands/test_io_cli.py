"""``mriviewer info`` and ``mriviewer convert`` as a user runs them (output, exit codes)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.core.io import open_kspace, write_fastmri
from tests.core.io.test_io_readers import bart_from_slices, random_kspace, write_bart  # noqa: E402

KSPACE = random_kspace((2, 4, 16, 12))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def fastmri_file(tmp_path) -> Path:
    return write_fastmri(
        tmp_path / "case.h5", KSPACE, recon_matrix=(8, 12), attrs={"acquisition": "AXT2"}
    )


def test_info_text_is_aligned_key_value_lines(capsys, fastmri_file):
    code, out, _ = run(capsys, "info", str(fastmri_file))
    assert code == 0
    lines = out.strip().splitlines()
    fields = {key: value.strip() for key, value in (line.split(": ", 1) for line in lines)}
    expected = {
        "file": str(fastmri_file),
        "format": "fastmri-h5",
        "slices": "2",
        "coils": "4",
        "matrix": "16 x 12 (H x W, phase-encode along W)",
        "recon matrix": "8 x 12",
        "acquisition": "AXT2",
        "reference": "yes (stored in the file)",
        "sampling": "fully sampled (slice 0)",
    }
    assert {k: fields[k] for k in expected} == expected
    value_columns = {len(line) - len(line.split(": ", 1)[1].lstrip()) for line in lines}
    assert len(value_columns) == 1  # values start in one column


def test_info_json(capsys, tmp_path):
    hdr, _ = write_bart(tmp_path / "ksp", bart_from_slices(KSPACE))
    code, out, _ = run(capsys, "info", str(hdr), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["format"] == "bart"
    assert (info["slices"], info["coils"], info["matrix"]) == (2, 4, [16, 12])
    assert info["recon_matrix"] == [16, 12] and info["reference"] is False
    assert info["header"]["bart_named_dims"]["SLICE"] == 2


def test_info_demo_uses_the_demo_resource(capsys, monkeypatch, fastmri_file):
    import mriviewer.core.resources as resources

    monkeypatch.setattr(resources, "demo_path", lambda: fastmri_file)
    code, out, _ = run(capsys, "info", "demo", "--json")
    assert code == 0 and json.loads(out)["path"] == str(fastmri_file)


def test_info_variable_option_for_npz(capsys, tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, a=KSPACE[0], b=KSPACE)
    code, _, err = run(capsys, "info", str(path))
    assert code == 1 and "choose one with variable=NAME (--variable NAME)" in err
    code, out, _ = run(capsys, "info", str(path), "--variable", "b", "--json")
    assert code == 0 and json.loads(out)["slices"] == 2


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda t: t / "missing.h5", "file not found"),
        (lambda t: (t / "bad.npy").write_bytes(b"\x93NUMPY garbage") and t / "bad.npy", "corrupt"),
        (lambda t: (t / "x.npy", np.save(t / "x.npy", np.ones((4, 4))))[0], "not complex"),
    ],
)
def test_info_errors_exit_1_naming_the_file(capsys, tmp_path, make, problem):
    path = make(tmp_path)
    code, out, err = run(capsys, "info", str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"mriviewer: error: {path}: ")
    assert problem in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def fake_checkpoints(monkeypatch):
    calls = []

    def describe_model(target):
        calls.append(target)
        return {
            "name": "tiny-modl",
            "unrolls": 4,
            "trained_on": {"data": "simulated"},
            "flops": {"dense": 10, "conv_macs": {"dense": 4, "pruned": 2}},
            "density": 0.030002170138888888,
            "reduction": 22341592072.454758,
            "cg_tol": 1e-06,
        }

    module = types.ModuleType("mriviewer.core.checkpoints")
    module.describe_model = describe_model
    monkeypatch.setitem(sys.modules, "mriviewer.core.checkpoints", module)
    return calls


def test_info_delegates_model_targets(capsys, tmp_path, fake_checkpoints):
    folder = tmp_path / "zoo_model"
    folder.mkdir()
    (folder / "model_card.json").write_text("{}")
    targets = ["model:tiny-modl", str(tmp_path / "w.safetensors"), str(folder)]
    for target in targets:
        code, out, _ = run(capsys, "info", target, "--json")
        assert code == 0 and json.loads(out)["unrolls"] == 4
    assert fake_checkpoints == targets
    code, out, _ = run(capsys, "info", "model:tiny-modl")
    assert code == 0
    assert "name:       tiny-modl" in out and "trained_on:\n  data: simulated\n" in out
    # nested dicts: one indented, aligned ``key: value`` line per entry (recursively)
    assert "flops:\n  dense:     10\n  conv_macs:\n    dense:  4\n    pruned: 2\n" in out
    # floats: six significant digits, large ones as integers (--json keeps them exact)
    assert "density:    0.0300022\n" in out and "reduction:  22341592072\n" in out
    assert "cg_tol:     1e-06" in out


def test_convert_writes_fastmri_and_prints_what_it_wrote(capsys, tmp_path):
    source = tmp_path / "k.npy"
    np.save(source, KSPACE)
    out_path = tmp_path / "out" / "k.h5"
    code, out, _ = run(capsys, "convert", str(source), str(out_path))
    assert code == 0
    assert out.startswith(f"wrote {out_path}: fastMRI HDF5, 2 slice(s) x 4 coil(s) x 16 x 12")
    assert "reference: RSS of the k-space" in out and f"from npy file {source}" in out
    volume = open_kspace(out_path)
    assert volume.format == "fastmri-h5" and volume.has_reference
    np.testing.assert_array_equal(volume.read_kspace(1), KSPACE[1])
    with h5py.File(out_path) as h5:
        assert h5.attrs["source_format"] == "npy"
    assert [p.name for p in out_path.parent.iterdir()] == ["k.h5"]  # no temp files left


def test_convert_undersampled_input_writes_no_reference(capsys, tmp_path):
    undersampled = KSPACE.copy()
    undersampled[..., ::2] = 0
    source = tmp_path / "us.npz"
    np.savez(source, mask=np.ones(3), data=undersampled)
    out_path = tmp_path / "us.h5"
    code, out, _ = run(capsys, "convert", str(source), str(out_path), "--variable", "data")
    assert code == 0 and "50.0% sampled), reference: none (undersampled input)" in out
    volume = open_kspace(out_path)
    assert not volume.has_reference
    np.testing.assert_array_equal(volume.read_kspace(0), undersampled[0])


def test_convert_errors_leave_no_output(capsys, tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    out_path = tmp_path / "out.h5"
    code, _, err = run(capsys, "convert", str(bad), str(out_path))
    assert code == 1 and err.startswith(f"mriviewer: error: {bad}: corrupt .npy header")
    assert not out_path.exists()
    good = tmp_path / "good.npy"
    np.save(good, KSPACE)
    code, _, err = run(capsys, "convert", str(good), str(tmp_path / "out.npy"))
    assert code == 1
    assert (
        err
        == f"mriviewer: error: {tmp_path / 'out.npy'}: output must be an HDF5 file ending in .h5 or .hdf5\n"
    )


def test_convert_real_twix(capsys, tmp_path, shared_data):
    pytest.importorskip("twixtools")
    out_path = tmp_path / "gre.h5"
    code, out, _ = run(
        capsys, "convert", str(shared_data / "siemens_twix_phantom" / "gre.dat"), str(out_path)
    )
    assert code == 0 and "1 slice(s) x 2 coil(s) x 160 x 160 k-space" in out
    volume = open_kspace(out_path)
    assert volume.header["acquisition"] == "gre" and volume.reference.shape == (160, 160)
