"""The Qt-free comparison session, and one stream for every front end: the session, ``eval``,
``recon`` and the exports give the same figures on the demo."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.core.errors import MriViewerError
from mriviewer.core.export import read_recon_h5
from mriviewer.core.physics.masks import MaskSpec
from mriviewer.core.session import ComparisonSession, default_view
from mriviewer.core.session_file import load_session, save_session

SPEC = MaskSpec(kind="random", acceleration=4, center_fraction=0.08, seed=0)
METHODS = ["zero-filled", "cg-sense"]


@pytest.fixture(scope="module")
def demo_session():
    """The session on one torch thread, and every CLI call of this module too (MRIVIEWER_THREADS):
    the same arithmetic gives the same images to the bit, while another thread count changes
    the order of parallel sums (CG-SENSE differs by up to 1e-4 between one and two threads)."""
    import torch

    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MRIVIEWER_THREADS", "1")
        torch.set_num_threads(1)
        session = ComparisonSession()
        session.open("demo", 0)
        session.make_mask(SPEC)
        traces = session.run(METHODS)
        assert all(t.complete and not t.error for t in traces.values())
        yield session
    torch.set_num_threads(before)


def test_session_cli_eval_and_recon_agree_on_the_demo(demo_session, tmp_path):
    from mriviewer.commands.eval import evaluate_files, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["eval", "demo", "--methods", ",".join(METHODS), "--slices", "0", "--seed", "0"]
    )
    result = evaluate_files(args)["cases"]["demo"]
    for name in METHODS:
        final = demo_session.traces[name].metrics[-1]
        assert final["psnr"] == pytest.approx(result[name]["psnr"], abs=1e-6)
        assert final["ssim"] == pytest.approx(result[name]["ssim"], abs=1e-6)
        out = tmp_path / f"{name}.h5"
        argv = ["recon", "demo", "--slice", "0", "--method", name, "--seed", "0"]
        assert main([*argv, "--mask", "random", "--out", str(out)]) == 0
        recon = read_recon_h5(out)
        (record,) = recon["methods"].values()
        np.testing.assert_allclose(
            record["final"], demo_session.traces[name].images[-1], rtol=1e-5, atol=1e-6
        )
        assert json.loads(recon["attrs"]["metrics"])["psnr"] == pytest.approx(final["psnr"])


def test_session_exports_share_the_layout_and_provenance(demo_session, tmp_path):
    view = default_view(demo_session)
    demo_session.export_recons(tmp_path / "all.h5", view)
    back = read_recon_h5(tmp_path / "all.h5")
    assert list(back["methods"]) == METHODS
    cg = back["methods"]["cg-sense"]
    assert cg["iterations"].shape[0] == len(demo_session.traces["cg-sense"].iterations)
    info = json.loads(back["attrs"]["provenance"])
    assert info["reference"] == "rss" and info["mask"]["spec"]["seed"] == 0
    assert info["methods"][1]["metrics"]["psnr"] == pytest.approx(cg["metrics"]["psnr"])
    demo_session.export_metrics(tmp_path / "m.csv", view)
    rows = (tmp_path / "m.csv").read_text().splitlines()
    assert rows[0].startswith("method,iteration,psnr,ssim,nmse,dc_residual,rel_change")
    assert len(rows) - 1 == sum(len(t.iterations) for t in demo_session.traces.values())


def test_session_state_round_trip(demo_session, tmp_path):
    state = demo_session.session_state(default_view(demo_session) | {"methods": METHODS}, {
        "kind": "random", "acceleration": 4.0, "center_fraction": 0.08, "calib": 20, "seed": 0
    })  # fmt: skip
    path = save_session(state, tmp_path / "s.json")
    again = load_session(path)
    assert again.file == str(demo_session.volume.path) and again.slice == 0
    assert again.reference == "rss" and again.methods == METHODS


def test_undersampled_session_has_no_psnr(tmp_path):
    from tests.conftest import phantom_case

    kspace, _, _ = phantom_case(64, 64, 4)
    kspace[:, :, 1::3] = 0
    kspace[:, :, 30:36] = phantom_case(64, 64, 4)[0][:, :, 30:36]
    np.save(tmp_path / "u.npy", kspace)
    session = ComparisonSession()
    session.open(tmp_path / "u.npy")
    assert not session.ground_truth and session.mask_kind == "data"
    session.use_data_sampling()
    traces = session.run(["cg-sense"])
    assert "psnr" not in traces["cg-sense"].metrics[-1]
    assert session.metric_rows()[-1]["psnr"] is None
    assert "no ground truth" in session.reference_title()


def test_session_errors_leave_it_as_it_was(tmp_path):
    session = ComparisonSession()
    with pytest.raises(MriViewerError, match="open a k-space file first"):
        session.run_request(["zero-filled"])
    session.open("demo", 0)
    with pytest.raises(MriViewerError):
        session.open(tmp_path / "missing.h5")
    assert session.volume.path.name == "demo_brain.h5"


@pytest.mark.parametrize("kind", ["rss", "sense"])
def test_reference_pane_title_is_short_enough_for_a_narrow_pane(kind):
    """The reference pane's title (its first line) names the convention in at most 32
    characters: "reference (RSS of the fully sampled data)" was cut in 256-px panes."""
    session = ComparisonSession()
    session.open("demo")
    session.reference_choice = session.reference_kind = kind  # as a run's "prepared" sets it
    first, second = session.reference_title().split("<br>")
    assert first == f"reference: {kind.upper()}, fully sampled" and len(first) <= 32
    session.metrics_region = "foreground"
    assert session.reference_title().split("<br>")[1] == "metrics over its foreground"
