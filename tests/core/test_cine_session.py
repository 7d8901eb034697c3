"""The cine session (what the app's cine mode presents) and the cine path of runs.execute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mriviewer.core.cine import cine_metrics
from mriviewer.core.cine_session import CineSession, gif_frames, write_cine_gif
from mriviewer.core.errors import MaskError, MriViewerError
from mriviewer.core.physics.masks import MaskSpec
from mriviewer.core.runs import execute
from mriviewer.core.session import REFERENCE


@pytest.fixture(scope="module")
def session():
    s = CineSession()
    s.open("demo-cine")
    s.make_mask(MaskSpec(kind="random", acceleration=8, center_fraction=0.08, seed=0))
    s.run(["zero-filled", "cg-sense"])
    return s


def test_open_and_kt_mask(session):
    t = session.frames
    assert t == 12 and session.kspace.shape == (t, 4, 64, 64)
    assert session.cine_reference.shape == (t, 64, 64)
    assert session.mask.shape == (t, 64, 64) and session.mask.ky_t().shape == (t, 64)
    assert session.achieved()[0] == pytest.approx(8.0)
    assert session.acceleration_per_frame() == [8.0] * t
    with pytest.raises(MaskError):
        session.make_mask(MaskSpec(kind="poisson", acceleration=4, seed=0))
    assert session.mask.spec.kind == "random"  # the previous mask stays


def test_execute_streams_series_with_series_and_per_frame_metrics(session):
    request = session.run_request(["zero-filled", "kt-l1"], settings={"kt-l1": {"max_iter": 3}})
    messages = list(execute(request, lambda: False))
    kinds = [m[0] for m in messages]
    assert kinds[0] == "status" and kinds[-1] == "done" and "failed" not in kinds
    prepared = next(m[1] for m in messages if m[0] == "prepared")
    assert prepared["reference"].shape == (12, 64, 64)
    assert prepared["kt_mask"]["acceleration_per_frame"] == [8.0] * 12
    payloads = [m[1] for m in messages if m[0] == "iteration"]
    assert [p.iteration for p in payloads if p.method == "kt-l1"] == [0, 1, 2, 3]
    last = payloads[-1]
    assert last.image.shape == (12, 64, 64) and last.image.dtype == np.complex64
    expected = cine_metrics(session.cine_reference, np.abs(last.image))
    assert last.metrics["psnr"] == pytest.approx(expected["psnr"])
    assert last.metrics["psnr_per_frame"] == pytest.approx(expected["psnr_per_frame"])


def test_a_2d_method_fails_alone(session):
    request = session.run_request(["l1-wavelet", "zero-filled"])
    messages = list(execute(request, lambda: False))
    failed = [m for m in messages if m[0] == "method_failed"]
    assert len(failed) == 1 and "cine methods" in failed[0][2]
    assert any(m[0] == "method_finished" and m[1] == "zero-filled" for m in messages)


def test_frames_profiles_and_provenance(session):
    it = session.max_iteration()
    session.set_frame(13)  # wraps
    assert session.frame == 1
    np.testing.assert_array_equal(session.reference, session.cine_reference[1])
    image = session.traces["cg-sense"].images[-1]
    np.testing.assert_array_equal(session.frame_image(image), image[1])
    assert len(session.frame_psnr("cg-sense", it)) == 12
    assert session.frame_psnr("cg-sense", -1) == []
    profile = session.temporal_profile("cg-sense", it, 30)
    np.testing.assert_allclose(profile, np.abs(image[:, 30, :]))
    assert session.temporal_profile(REFERENCE, it, 999).shape == (12, 64)  # clipped row
    info = session.provenance({"iteration": it})
    json.dumps(info)
    assert info["frame"] == 1 and info["mask"]["spec"]["kind"] == "random"
    assert [m["name"] for m in info["methods"]] == ["zero-filled", "cg-sense"]


def test_gif(tmp_path):
    import imageio.v3 as iio

    a = np.linspace(0, 1, 5 * 4 * 3).reshape(5, 4, 3)
    frames = gif_frames([a, 2 * a], (0.0, 1.0))
    assert frames.shape == (5, 4, 3 + 2 + 3) and frames.dtype == np.uint8
    assert frames[..., 5:].max() == 255 and frames[..., 3:5].max() == 0
    out = write_cine_gif(tmp_path / "a.gif", [a, 2 * a], (0.0, 1.0), fps=10, sidecar={"x": 1})
    assert iio.imread(out, index=None).shape[0] == 5
    assert json.loads((tmp_path / "a.gif.json").read_text()) == {"x": 1}
    with pytest.raises(MriViewerError):
        write_cine_gif(tmp_path / "a.png", [a], (0.0, 1.0))
