"""Cine (2-D + time) inputs beyond the cine HDF5 layout, and undersampled cine data.

- BART ``.cfl`` / ``.hdr`` with TIME (dim 10) > 1 and MATLAB ``.mat`` with ``--axes`` holding
  T round-trip through :func:`open_cine`; wrong shapes give a one-line error naming the file.
- An undersampled cine file (with and without a ``mask`` dataset) is reconstructed with its own
  k-t sampling through the functions ``mriviewer eval`` and the app use: R per frame and
  overall are stated, and without ground truth no PSNR/SSIM/NMSE appears (the data-consistency
  residual does).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from mriviewer.cli import main
from mriviewer.core.errors import KSpaceReadError
from mriviewer.core.io import open_kspace
from mriviewer.core.io.cine import is_cine, open_cine, write_cine
from tests.core.io.test_io_readers import write_bart, write_mat73

S, T, C, H, W = 2, 3, 2, 16, 12


def series(seed: int = 0) -> np.ndarray:
    """Random complex64 ``(S, T, C, H, W)`` k-space (no zeros)."""
    rng = np.random.default_rng(seed)
    shape = (S, T, C, H, W)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def one_line_error(excinfo, path: Path) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and path.name in text
    return text


# -- BART ----------------------------------------------------------------------------------
def bart_cine(kspace: np.ndarray) -> np.ndarray:
    """(S, T, C, H, W) -> BART [READ=H, PHS1=W, PHS2=1, COIL=C, 1 x 6, TIME=T, 1, 1, SLICE=S]."""
    out = np.zeros((H, W, 1, C) + (1,) * 6 + (T, 1, 1, S), np.complex64)
    out[:, :, 0, :, 0, 0, 0, 0, 0, 0, :, 0, 0, :] = kspace.transpose(3, 4, 2, 1, 0)
    return out


@pytest.mark.parametrize("given", ["", ".cfl", ".hdr"])
def test_bart_time_round_trip(tmp_path, given):
    kspace = series()
    write_bart(tmp_path / "cine", bart_cine(kspace))
    path = Path(f"{tmp_path / 'cine'}{given}")
    assert is_cine(path)
    volume = open_cine(path)
    assert volume.format == "cine-bart"
    assert (volume.num_slices, volume.num_frames, volume.num_coils) == (S, T, C)
    assert volume.matrix == (H, W)  # READ x PHS1, as the 2-D BART reader reads it
    assert volume.header["bart_named_dims"]["TIME"] == T
    for s in range(S):
        np.testing.assert_allclose(volume.read_kspace(s), kspace[s], atol=1e-6)


def test_bart_time_read_as_the_2d_reader_reads_each_frame(tmp_path):
    """Frame t of the cine reading is the 2-D reader's reading of the same pair without TIME."""
    kspace = series(1)
    write_bart(tmp_path / "cine", bart_cine(kspace))
    frame = bart_cine(kspace)[..., 1:2, :, :, :]  # TIME = 1: the second frame alone
    write_bart(tmp_path / "frame", frame)
    two_d = open_kspace(tmp_path / "frame.cfl")
    cine = open_cine(tmp_path / "cine.cfl")
    for s in range(S):
        np.testing.assert_array_equal(cine.read_kspace(s)[1], two_d.read_kspace(s))


def test_bart_readers_refuse_the_other_kind(tmp_path):
    write_bart(tmp_path / "cine", bart_cine(series()))
    with pytest.raises(KSpaceReadError) as excinfo:
        open_kspace(tmp_path / "cine.cfl")
    text = one_line_error(excinfo, tmp_path / "cine.cfl")
    assert "TIME (dim 10) = 3" in text and "open_cine" in text
    plain = np.zeros((H, W, 1, C), np.complex64) + 1
    write_bart(tmp_path / "plain", plain)
    assert not is_cine(tmp_path / "plain.cfl")
    with pytest.raises(KSpaceReadError) as excinfo:
        open_cine(tmp_path / "plain.cfl")
    assert "TIME (dim 10) = 1" in one_line_error(excinfo, tmp_path / "plain.cfl")


def test_bart_time_wrong_shape_is_one_line(tmp_path):
    # the image in READ x COIL: a layout no reading makes plausible
    bad = np.ones((H, 1, 1, W) + (1,) * 6 + (T,), np.complex64)
    write_bart(tmp_path / "bad", bad)
    assert is_cine(tmp_path / "bad.cfl")
    with pytest.raises(KSpaceReadError) as excinfo:
        open_cine(tmp_path / "bad.cfl")
    assert "implausible layout" in one_line_error(excinfo, tmp_path / "bad.cfl")
    write_bart(tmp_path / "short", bart_cine(series()))
    data = (tmp_path / "short.cfl").read_bytes()
    (tmp_path / "short.cfl").write_bytes(data[:-8])
    with pytest.raises(KSpaceReadError) as excinfo:
        open_cine(tmp_path / "short.hdr")
    assert "truncated" in one_line_error(excinfo, tmp_path / "short.cfl")


# -- MATLAB --------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_mat_axes_round_trip(tmp_path, version):
    kspace = series(2)
    array = kspace.transpose(3, 4, 2, 1, 0)  # MATLAB [rows, cols, coils, frames, slices]
    path = tmp_path / "cine.mat"
    variables = {"ksp": array, "other": array[..., 0] * 2}
    if version == "v5":
        scipy.io.savemat(path, variables)
    else:
        write_mat73(path, variables)
    assert is_cine(path, "HWCTS") and not is_cine(path)
    volume = open_cine(path, axes="hwcts")
    assert volume.format == "cine-matlab" and volume.header["variable"] == "ksp"
    assert (volume.num_slices, volume.num_frames, volume.num_coils) == (S, T, C)
    for s in range(S):
        np.testing.assert_allclose(volume.read_kspace(s), kspace[s], atol=1e-6)
    other = open_cine(path, axes="HWCT", variable="other")  # one slice, chosen by name
    np.testing.assert_allclose(other.read_kspace(0), kspace[0] * 2, atol=1e-6)


def test_mat_wrong_shape_is_one_line(tmp_path):
    path = tmp_path / "cine.mat"
    scipy.io.savemat(path, {"ksp": series()[0].transpose(2, 3, 1, 0)})  # H W C T
    for axes, words in [
        ("HWCS", "including T"),  # no T
        ("HWT", "rank 4"),  # too few letters
        ("CHWT", "implausible layout"),  # 16 'coils', a 2-pixel image axis
    ]:
        with pytest.raises(KSpaceReadError) as excinfo:
            open_cine(path, axes=axes)
        assert words in one_line_error(excinfo, path)
    with pytest.raises(KSpaceReadError) as excinfo:
        open_cine(path, axes="HWCT", variable="missing")
    assert "no variable 'missing'" in one_line_error(excinfo, path)


def test_eval_reads_mat_cine(tmp_path):
    data = open_cine("demo-cine").read_kspace(0)[:4]
    path = tmp_path / "cine.mat"
    scipy.io.savemat(path, {"kdata": data.transpose(2, 3, 1, 0)})
    out = tmp_path / "r.json"
    code = main(["eval", str(path), "--axes", "HWCT", "--variable", "kdata", "--methods",
                 "zero-filled", "--json", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["settings"]["cases"]["cine.mat"]["frames"] == 4
    assert "psnr" in result["cases"]["cine.mat"]["zero-filled"]


# -- undersampled cine ---------------------------------------------------------------------
FRAMES = 6


@pytest.fixture(scope="module")
def undersampled(tmp_path_factory):
    """An accelerated cine (demo-cine's first frames under a k-t mask, R 4 per frame) written
    with and without its ``mask`` dataset, and the mask."""
    from mriviewer.core.physics.kt_masks import make_kt_mask
    from mriviewer.core.physics.masks import MaskSpec

    root = tmp_path_factory.mktemp("undersampled")
    data = open_cine("demo-cine").read_kspace(0)[:FRAMES]
    spec = MaskSpec(kind="random", acceleration=4, center_fraction=0.16, seed=1)
    mask = make_kt_mask(spec, FRAMES, data.shape[-2:])
    with_mask = write_cine(root / "with_mask.h5", data * mask[:, None], mask=mask)
    zeros_only = write_cine(root / "zeros.h5", data * mask[:, None], mask=mask)
    with h5py.File(zeros_only, "a") as h5:
        del h5["mask"]  # only the zeros tell what was sampled
    return {"with_mask": with_mask, "zeros": zeros_only, "mask": mask}


@pytest.mark.parametrize("name", ["with_mask", "zeros"])
def test_undersampled_cine_core(undersampled, name):
    from mriviewer.core.cine import (
        detect_kt_sampling,
        final_cine_record,
        get_cine_method,
        prepare_cine_problem,
        stream_cine,
    )

    mask = undersampled["mask"]
    per_frame = [f.size / f.sum() for f in mask]
    volume = open_cine(undersampled[name])
    assert (volume.mask is not None) == (name == "with_mask") and not volume.has_reference
    kspace = volume.read_kspace(0)
    own = detect_kt_sampling(kspace, volume.mask)
    assert not own.fully_sampled and np.array_equal(own.pattern, mask)
    assert own.source == ("file mask" if name == "with_mask" else "detected")
    assert own.acceleration_per_frame == pytest.approx(per_frame)
    assert own.acceleration == pytest.approx(mask.size / mask.sum())
    assert "R 4.00" in own.describe()
    problem = prepare_cine_problem(kspace, own.pattern, reference=None, sampling=own)
    assert problem.reference is None and problem.reference_kind is None
    assert problem.info["fully_sampled"] is False
    assert problem.info["mask"]["acceleration_per_frame"] == pytest.approx(per_frame)
    assert problem.info["data_sampling"]["acceleration"] == pytest.approx(4.0)
    assert any("no ground truth, no PSNR" in w for w in problem.warnings)
    # a drawn mask on top keeps only the points the data hold
    full = np.ones_like(mask)
    assert np.array_equal(prepare_cine_problem(kspace, full).mask, mask)
    with pytest.raises(Exception, match="SENSE reference needs fully sampled"):
        prepare_cine_problem(kspace, mask, reference_kind="sense")
    for method, settings in (("zero-filled", {}), ("cg-sense", {"max_iter": 4})):
        records = list(stream_cine(get_cine_method(method, **settings), problem))
        for record in records:
            assert not {"psnr", "ssim", "nmse", "psnr_per_frame"} & set(record.metrics)
            assert 0 < record.metrics["dc_residual"] < 1
        assert ("rel_change" in records[-1].metrics) == (len(records) > 1)
        last = final_cine_record(get_cine_method(method, **settings), problem)
        assert last.metrics == {} and last.image.shape == (FRAMES, 64, 64)
    zf = list(stream_cine(get_cine_method("zero-filled"), problem))[-1]
    cg = list(stream_cine(get_cine_method("cg-sense", max_iter=4), problem))[-1]
    assert cg.metrics["dc_residual"] < zf.metrics["dc_residual"]  # CG fits the data better


def test_undersampled_cine_eval(undersampled, tmp_path, capsys):
    files = [str(undersampled["with_mask"]), str(undersampled["zeros"])]
    out = tmp_path / "r.json"
    code = main(["eval", *files, "--methods", "zero-filled,cg-sense", "--method-option",
                 "cg-sense.max_iter=4", "--json", str(out)])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "no PSNR" in captured.out and "DC residual" in captured.out
    assert "its own k-t sampling is the mask" in captured.err
    result = json.loads(out.read_text())
    for case in ("with_mask.h5", "zeros.h5"):
        for metrics in result["cases"][case].values():
            assert set(metrics) == {"dc_residual", "seconds"}
        info = result["settings"]["cases"][case]
        assert info["ground_truth"] is False and info["psnr_per_frame"] == {}
        assert info["achieved_acceleration"] == pytest.approx(4.0)
        (sampled,) = info["data_sampling"]
        assert sampled["acceleration_per_frame"] == pytest.approx([4.0] * FRAMES)
    capsys.readouterr()
    assert main(["eval", "demo-cine", "--mask", "data"]) != 0
    assert "fully sampled" in capsys.readouterr().err


def test_undersampled_cine_session(undersampled):
    from mriviewer.core.cine_session import CineSession
    from mriviewer.core.errors import MaskError
    from mriviewer.core.physics.masks import MaskSpec

    session = CineSession()
    session.open(undersampled["zeros"])
    mask = undersampled["mask"]
    assert not session.ground_truth and session.mask_kind == "data"
    assert np.array_equal(session.mask.array, mask)
    assert session.achieved()[0] == pytest.approx(4.0)
    assert session.acceleration_per_frame() == pytest.approx([4.0] * FRAMES)
    assert "data's own k-t sampling" in session.mask_note()
    assert "no PSNR" in session.metrics_note() and "R 4.00" in session.metrics_note()
    session.run(["zero-filled", "cg-sense"], settings={"cg-sense": {"max_iter": 3}})
    for trace in session.traces.values():
        assert trace.error is None
        assert "psnr" not in trace.metrics[-1] and "dc_residual" in trace.metrics[-1]
    assert session.frame_psnr("cg-sense", session.max_iteration()) == []
    info = session.provenance({})
    assert info["ground_truth"] is False and info["data_sampling"]["acceleration"] == 4.0
    # a drawn k-t mask lies within the data's own sampling
    session.make_mask(MaskSpec(kind="random", acceleration=2, center_fraction=0.08, seed=0))
    assert not (session.effective_mask() & ~mask).any()
    assert session.achieved()[0] > 4.0
    fully = CineSession()
    fully.open("demo-cine")
    with pytest.raises(MaskError, match="fully sampled"):
        fully.use_data_sampling()
