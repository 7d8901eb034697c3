"""The cine session (what the app's cine mode presents) and the cine path of runs.execute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mriviewer.core.cine import cine_metrics
from mriviewer.core.cine_session import (
    AnimationPane,
    CineSession,
    frame_metric_captions,
    pane_scale,
    render_animation_frames,
    write_cine_animation,
)
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


def _moving_blob(frames: int = 5, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.stack(
        [np.exp(-((xx - 16 - 6 * t) ** 2 + (yy - 32) ** 2) / 50.0) for t in range(frames)]
    ).astype(np.float32)


def _comparison(frames: int = 5) -> list[AnimationPane]:
    ref = _moving_blob(frames)
    noisy = ref + 0.05 * np.random.default_rng(0).standard_normal(ref.shape)
    return [
        AnimationPane("reference (RSS per frame)", ref),
        AnimationPane("zero-filled", noisy, frame_metric_captions(ref, noisy)),
    ]


def test_animation_frames_are_enlarged_titled_and_even():
    assert pane_scale(64, 64) == 4 and pane_scale(300, 200) == 1 and pane_scale(100, 80) == 3
    panes = _comparison()
    assert panes[1].captions[0].startswith("PSNR ") and " dB  SSIM 0." in panes[1].captions[0]
    frames = render_animation_frames(panes, (0.0, 1.0), header="iteration 3")
    t, height, width, c = frames.shape
    assert (t, c) == (5, 3) and frames.dtype == np.uint8
    assert height % 2 == 0 and width % 2 == 0
    assert width >= 2 * 256 and height >= 256  # 64 x 64 panes enlarged 4 x
    # the text bands differ between frames (frame index, PSNR/SSIM) and so do the images
    assert not np.array_equal(frames[0, :40], frames[1, :40])
    assert not np.array_equal(frames[0, -200:], frames[1, -200:])
    with pytest.raises(MriViewerError):
        render_animation_frames([], (0.0, 1.0))
    with pytest.raises(MriViewerError):
        render_animation_frames([panes[0], AnimationPane("x", np.zeros((4, 64, 64)))], (0, 1))


def test_a_one_pane_animation_wraps_its_header_instead_of_cutting_it():
    """recon's one-pane GIF (256 px wide) used to cut its header with an ellipsis; it is now
    wrapped onto more lines, the same number in every frame, and the band grows to hold them."""
    from mriviewer.core.cine_session import ANIMATION_LINE, animation_header_lines

    header = "R 4.00, demo_cine.h5 slice 0   ·   model:cine-dense   ·   k-t random R 8"
    lines = animation_header_lines(header, 12, 256)
    assert len({len(per_frame) for per_frame in lines}) == 1 and len(lines[0]) >= 3
    assert lines[0][0] == "frame 0 of 0-11" and lines[11][0] == "frame 11 of 0-11"
    words = " ".join(lines[5][1:]).replace("·", " ").split()
    assert words == header.replace("·", " ").split() and "…" not in "".join(lines[5])
    assert all(len(line) <= 32 for line in lines[5])
    # a wide frame keeps one line
    assert animation_header_lines("iteration 3", 5, 600) == [
        [f"frame {f} of 0-4   ·   iteration 3"] for f in range(5)
    ]
    pane = [AnimationPane("model:cine-dense", _moving_blob(12))]
    short = render_animation_frames(pane, (0.0, 1.0), header="")
    long = render_animation_frames(pane, (0.0, 1.0), header=header)
    assert long.shape[1] - short.shape[1] >= (len(lines[0]) - 1) * ANIMATION_LINE - 1
    assert long.shape[2] == short.shape[2]


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_animation_gif_and_mp4(tmp_path, suffix):
    import imageio.v3 as iio

    panes = _comparison()
    expected = render_animation_frames(panes, (0.0, 1.0), header="h")
    out = write_cine_animation(
        tmp_path / f"a{suffix}", panes, (0.0, 1.0), fps=10, sidecar={"x": 1}, header="h"
    )
    back = iio.imread(out, index=None)
    assert back.shape[0] == 5 and back.shape[1:3] == expected.shape[1:3]
    assert not np.array_equal(back[0], back[2]) and back.std() > 10
    # lossy (palette or H.264) but close to the rendered frames
    assert np.abs(back[..., :3].astype(float) - expected).mean() < 12
    assert json.loads((tmp_path / f"a{suffix}.json").read_text()) == {"x": 1}
    # no temporary file left beside them
    assert {p.name for p in tmp_path.iterdir()} == {f"a{suffix}", f"a{suffix}.json"}
    if suffix == ".mp4":
        meta = iio.immeta(out, plugin="FFMPEG")
        assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
        assert meta["fps"] == 10


def test_animation_export_errors(tmp_path, monkeypatch):
    import sys

    with pytest.raises(MriViewerError, match=r"\.gif or \.mp4"):
        write_cine_animation(tmp_path / "a.png", _comparison(), (0.0, 1.0))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if missing
    with pytest.raises(MriViewerError, match="imageio-ffmpeg") as info:
        write_cine_animation(tmp_path / "a.mp4", _comparison(), (0.0, 1.0))
    assert "\n" not in str(info.value) and not (tmp_path / "a.mp4").exists()
