"""GRAPPA (pygrappa mdgrappa): beats zero-filled RSS on 1-D and 2-D masks, refuses a missing ACS."""

from __future__ import annotations

import numpy as np
import pytest

from mriviewer.core.compare import (
    classical_methods,
    evaluate_image,
    get_method,
    needs_coil_maps,
    prepare_problem,
    run_method,
)
from mriviewer.core.errors import ReconError
from mriviewer.core.physics import MaskSpec, make_mask
from mriviewer.core.recon.grappa import Grappa, auto_kernel, calibration_block, parse_kernel
from tests.conftest import phantom_case


def _problem(spec: MaskSpec, coil_method: str = "espirit"):
    kspace, _, _ = phantom_case(64, 64, coils=8, seed=0)
    return prepare_problem(kspace, make_mask(spec, kspace.shape[-2:]), coil_method=coil_method)


def _psnr(name: str, problem, **settings) -> float:
    results = list(run_method(get_method(name, **settings), problem))
    assert results[-1].final
    return evaluate_image(problem, results[-1].image)["psnr"]


@pytest.mark.parametrize(
    "spec",
    [
        MaskSpec("equispaced", 2.0, 0.16, seed=0),
        MaskSpec("random", 3.0, 0.16, seed=0),
        MaskSpec("poisson", 3.0, calib=16, seed=0),
    ],
    ids=["equispaced-R2", "random-R3", "poisson-R3"],
)
def test_beats_zero_filled_rss(spec):
    problem = _problem(spec)
    zero = _psnr("zero-filled-rss", problem)
    grappa = _psnr("grappa", problem)
    assert grappa > zero + 2.0, (grappa, zero)


def test_sense_combine_beats_sense_zero_filled():
    problem = _problem(MaskSpec("equispaced", 2.0, 0.16, seed=0))
    zero = _psnr("zero-filled", problem)
    assert _psnr("grappa", problem, combine="sense") > zero + 2.0


def test_stream_contract_and_measured_points_kept():
    problem = _problem(MaskSpec("random", 3.0, 0.16, seed=0))
    method = get_method("grappa")
    results = list(method.iterate(problem))
    assert len(results) == 1 and results[0].final and results[0].method == "grappa"
    rows, cols = calibration_block(problem.mask, (3, 5))  # the whole run of central lines
    assert problem.mask[:, cols].all() and not problem.mask[0, [cols.start - 1, cols.stop]].any()
    assert results[0].extra == {"acs_rows": 64, "acs_cols": cols.stop - cols.start, "kernel": "3x5"}
    assert results[0].image.shape == problem.shape and results[0].image.dtype == np.complex64
    filled = method.fill(problem)
    np.testing.assert_array_equal(filled[:, problem.mask], problem.kspace[:, problem.mask])
    assert np.abs(filled[:, ~problem.mask]).max() > 0  # the holes were filled


def test_refuses_without_calibration_region():
    kspace, _, _ = phantom_case(64, 64, coils=8, seed=0)
    mask = np.zeros((64, 64), dtype=bool)
    mask[:, 1::2] = True  # R=2 lines, the centre column 32 not sampled: no ACS
    problem = prepare_problem(kspace, mask, coil_method="espirit")
    with pytest.raises(ReconError, match=r"calibration region\) is 0 x 0 points; a 3 x 5 kernel"):
        list(run_method(get_method("grappa"), problem))
    mask[:, 32] = True  # 3 central lines (31-33): narrower than the 5 kernel columns
    problem = prepare_problem(kspace, mask, coil_method="lowres")
    with pytest.raises(ReconError, match="is 64 x 3 points"):
        list(run_method(get_method("grappa"), problem))
    assert _psnr("grappa", problem, kernel_size="3x3") > _psnr("zero-filled-rss", problem)


def test_needs_coil_maps_only_for_sense_combine():
    assert not needs_coil_maps(get_method("grappa"))
    assert needs_coil_maps(get_method("grappa", combine="sense"))
    problem = _problem(MaskSpec("equispaced", 2.0, 0.16, seed=0))
    problem.coil_maps = None
    problem.info["calibration_error"] = "no maps here"
    assert np.isfinite(_psnr("grappa", problem))
    with pytest.raises(ReconError, match="grappa needs coil maps: no maps here"):
        list(run_method(get_method("grappa", combine="sense"), problem))


def test_settings():
    assert "grappa" in classical_methods()
    method = get_method("grappa", kernel_size=5, **{"lambda": 0.1})
    assert method.settings() == {"kernel_size": [5, 5], "lamda": 0.1, "combine": "rss"}
    assert Grappa(**method.settings()).settings() == method.settings()
    assert parse_kernel("3x5") == parse_kernel([3, 5]) == parse_kernel("3,5") == (3, 5)
    assert parse_kernel("[3, 5]") == parse_kernel("[3,5]") == (3, 5)  # the README's CLI form
    assert get_method("grappa").settings()["kernel_size"] == "auto"
    assert parse_kernel("auto") is None
    for bad, match in [
        ({"kernel_size": "3x"}, "not a pair of integers"),
        ({"kernel_size": 0}, ">= 2"),
        ({"kernel_size": "1x5"}, ">= 2"),  # no neighbours along H: pygrappa cannot fit it
        ({"kernel_size": [1, 2, 3]}, "must be N"),
        ({"lamda": -1}, "must be >= 0"),
        ({"combine": "mean"}, "combine must be 'rss' or 'sense'"),
        ({"kernel": 3}, "unknown setting"),
    ]:
        with pytest.raises(ReconError, match=match):
            get_method("grappa", **bad)


def test_auto_kernel_follows_the_mask():
    lines = make_mask(MaskSpec("random", 4.0, 0.08, seed=0), (32, 40)).array
    assert auto_kernel(lines) == (3, 5) and auto_kernel(lines.T) == (5, 3)
    assert auto_kernel(make_mask(MaskSpec("poisson", 3.0, calib=12), (32, 40)).array) == (3, 3)


def test_calibration_block_is_fully_sampled_for_2d_masks():
    mask = make_mask(MaskSpec("poisson", 4.0, calib=12, seed=1), (48, 40)).array
    rows, cols = calibration_block(mask, (3, 5))
    block = mask[rows, cols]
    assert block.all() and block.shape[0] >= 12 and block.shape[1] >= 12
    assert rows.start <= 24 < rows.stop and cols.start <= 20 < cols.stop
    # a cross-shaped centre: the block must not include the unsampled corners
    cross = np.zeros((20, 20), dtype=bool)
    cross[8:12, :] = True
    cross[:, 9:12] = True
    rows, cols = calibration_block(cross)
    assert cross[rows, cols].all() and cross[rows, cols].size == 4 * 20


@pytest.mark.slow
@pytest.mark.parametrize("reference", ["rss", "sense"])
def test_beats_zero_filled_on_the_demo(reference):
    """The README's demo setting: random R=4, centre fraction 0.08, both reference conventions."""
    from mriviewer.core.compare import prepare_from_volume
    from mriviewer.core.io import open_kspace

    volume = open_kspace("demo")
    mask = make_mask(MaskSpec("random", 4.0, 0.08, seed=0), volume.matrix)
    problem = prepare_from_volume(volume, mask, fully_sampled=True, reference_kind=reference)
    zero = "zero-filled-rss" if reference == "rss" else "zero-filled"
    combine = "rss" if reference == "rss" else "sense"
    assert _psnr("grappa", problem, combine=combine) > _psnr(zero, problem) + 2.0


@pytest.mark.parametrize(
    ("spec", "kernel"),
    [
        (MaskSpec("random", 3.0, 0.16, seed=0), (3, 5)),
        (MaskSpec("poisson", 3.0, calib=16, seed=0), (3, 3)),
        (MaskSpec("random", 3.0, 0.16, seed=0), (4, 4)),
    ],
    ids=["lines-3x5", "poisson-3x3", "even-4x4"],
)
def test_trained_weights_are_pygrappas_fit(spec, kernel):
    """train_weights (one Gram matrix) gives mdgrappa's own kernels and the same filled k-space."""
    from pygrappa import mdgrappa

    from mriviewer.core.recon.grappa import train_weights

    kspace, _, _ = phantom_case(64, 64, coils=8, seed=0)
    mask = make_mask(spec, (64, 64)).array
    data = (kspace * mask).astype(np.complex64)
    rows, cols = calibration_block(mask, kernel)
    calib = data[:, rows, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        filled, theirs = mdgrappa(
            data, calib, kernel_size=kernel, coil_axis=0, lamda=0.1, ret_weights=True
        )
    ours = train_weights(data[0] != 0, calib, kernel, 0.1)
    assert set(ours) == set(theirs) and len(ours) > 10
    for key, w in theirs.items():
        np.testing.assert_allclose(ours[key], w, rtol=1e-9, atol=1e-9 * np.abs(w).max(initial=0))
    ours_filled = mdgrappa(data, calib, kernel_size=kernel, coil_axis=0, lamda=0.1, weights=ours)
    np.testing.assert_allclose(ours_filled, filled, atol=1e-6 * np.abs(filled).max())


def test_auto_kernel_is_recorded_as_resolved_by_the_session_and_recon(tmp_path):
    """``kernel_size="auto"`` is stored with what it became (issue 18's follow-up): the session's
    trace settings and recon's ``method_settings`` both carry ``resolved.kernel``."""
    import json

    import h5py

    from mriviewer.cli import main
    from mriviewer.core.physics.masks import MaskSpec
    from mriviewer.core.session import ComparisonSession

    session = ComparisonSession()
    session.open("demo", 0)
    session.make_mask(MaskSpec("equispaced", 4.0, 0.08, seed=0))
    trace = session.run(["grappa"])["grappa"]
    assert trace.complete and not trace.error
    assert trace.settings["kernel_size"] == "auto"
    assert trace.settings["resolved"]["kernel"] == "3x5"
    assert trace.settings["resolved"]["acs_cols"] >= 5

    out = tmp_path / "g.h5"
    assert (
        main(["recon", "demo", "--method", "grappa", "--mask", "equispaced", "--out", str(out)])
        == 0
    )
    with h5py.File(out, "r") as fh:
        settings = json.loads(fh.attrs["method_settings"])
    assert settings["kernel_size"] == "auto" and settings["resolved"]["kernel"] == "3x5"
