"""The app's cine mode on the bundled demo-cine series (64 x 64, 4 coils, 12 frames)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PyQt6.QtCore import Qt

from mriviewer.core.cine_session import ANIMATION_GAP, ANIMATION_MARGIN
from mriviewer.core.session import REFERENCE
from tests.gui.conftest import run_and_wait

pytestmark = pytest.mark.gui

FRAMES = 12


@pytest.fixture
def cine_window(window):
    assert window.open_file("demo-cine")
    return window


def _pane_images(window) -> dict[str, np.ndarray]:
    return {k: np.array(p.data) for k, p in window.grid.panes.items() if p.data is not None}


def test_opening_demo_cine_shows_the_kt_mask_and_r_per_frame(cine_window):
    w = cine_window
    assert w.session.is_cine and w.kspace.shape == (FRAMES, 4, 64, 64)
    assert w.cine_bar.isVisible() and w.docks["cine"].isVisible()
    assert w.cine_bar.slider.maximum() == FRAMES - 1
    # default: random R 8 with the shared calibration band
    assert w.mask_panel.kind() == "random" and w.mask_panel.accel_spin.value() == 8.0
    assert w.effective_mask().shape == (FRAMES, 64, 64)
    # the k-space view is the ky-t image: frames down, phase-encode lines across
    overlay = w.kspace_view.overlay.image
    assert overlay.shape[:2] == (FRAMES, 64)
    np.testing.assert_array_equal(overlay[..., 3] == 150, ~w.session.mask.ky_t())
    label = w.mask_panel.achieved_label.text()
    assert "achieved R: 8.00" in label and "R per frame: 8.00 in each of the 12 frames" in label
    # the mask panel's settings draw a new k-t mask (equispaced: a sheared lattice)
    w.mask_panel.set_kind("equispaced")
    assert w.session.mask.spec.kind == "equispaced"
    assert not np.array_equal(w.session.mask.ky_t()[0], w.session.mask.ky_t()[1])
    assert "R per frame" in w.mask_panel.achieved_label.text()
    # 2-D-only classical methods cannot be checked in the cine mode; models can (frames as batch)
    cine_models = set(w.bundled_cine_models())  # the zoo's cine-* models, checked with them
    assert set(w.methods_panel.checked()) == {"zero-filled", "cg-sense", "kt-l1"} | cine_models
    enabled = {
        w.methods_panel.list.item(i).data(Qt.ItemDataRole.UserRole)
        for i in range(w.methods_panel.list.count())
        if w.methods_panel.list.item(i).flags() & Qt.ItemFlag.ItemIsEnabled
    }
    assert {"zero-filled", "cg-sense", "kt-l1"} <= enabled and "l1-wavelet" not in enabled
    assert all(k.startswith("model:") for k in enabled - {"zero-filled", "cg-sense", "kt-l1"})


def test_run_streams_series_and_the_frame_slider_moves_every_pane(cine_window, qtbot):
    w = cine_window
    w.set_error_maps(True)
    assert not run_and_wait(qtbot, w, ["zero-filled", "cg-sense"])
    for key in ("zero-filled", "cg-sense"):
        trace = w.traces[key]
        assert trace.error is None and trace.complete
        assert all(img.shape == (FRAMES, 64, 64) for img in trace.images)
        met = trace.metrics[-1]
        assert np.isfinite(met["psnr"]) and len(met["psnr_per_frame"]) == FRAMES
    assert len(w.traces["cg-sense"].iterations) > 1
    # the table shows the series metrics; the frame plot PSNR per frame at the shown iteration
    psnr = w.traces["cg-sense"].metrics[-1]["psnr"]
    assert w.table.cell_text(1, "PSNR (dB)") == f"{psnr:.2f}"
    xs, ys = w.cine_panel.frame_curves["cg-sense"].getData()
    assert len(xs) == FRAMES
    np.testing.assert_allclose(ys, w.traces["cg-sense"].metrics[-1]["psnr_per_frame"])
    before = _pane_images(w)
    errors = {k: np.array(p.error) for k, p in w.grid.panes.items() if p.error is not None}
    assert set(before) == {REFERENCE, "zero-filled", "cg-sense"} and set(errors) == {
        "zero-filled",
        "cg-sense",
    }
    w.cine_bar.slider.setValue(5)
    assert w.session.frame == 5 and w.cine_bar.label.text() == "5 / 11"
    after = _pane_images(w)
    for key in before:
        assert not np.array_equal(before[key], after[key]), key
    np.testing.assert_allclose(after[REFERENCE], w.session.cine_reference[5])
    np.testing.assert_allclose(after["cg-sense"], np.abs(w.traces["cg-sense"].images[-1][5]))
    for key, err in errors.items():
        assert not np.array_equal(err, w.grid.panes[key].error), key
    assert w.cine_panel.frame_marker.value() == 5


def test_play_advances_frames_with_a_timer(cine_window, qtbot):
    w = cine_window
    w.cine_bar.fps_spin.setValue(50.0)
    assert w.play_timer.interval() == 20
    w.cine_bar.play_button.click()
    assert w.play_timer.isActive() and w.cine_bar.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: w.session.frame >= 3, timeout=5000)
    w.set_playing(False)
    assert not w.play_timer.isActive() and not w.cine_bar.play_button.isChecked()
    shown = w.session.frame
    np.testing.assert_allclose(w.grid.panes[REFERENCE].data, w.session.cine_reference[shown])


def test_temporal_profile_and_gif_export(cine_window, qtbot, tmp_path):
    import imageio.v3 as iio

    w = cine_window
    assert not run_and_wait(qtbot, w, ["zero-filled", "kt-l1"])
    w.set_profile_row(20)
    profiles = w.temporal_profiles()
    assert set(profiles) == {REFERENCE, "zero-filled", "kt-l1"}
    assert all(p.shape == (FRAMES, 64) for p in profiles.values())
    np.testing.assert_allclose(profiles[REFERENCE], w.session.cine_reference[:, 20, :])
    assert w.cine_panel.profile_data["kt-l1"].shape == (FRAMES, 64)
    out = tmp_path / "cine.gif"
    assert w.export_animation(out)
    frames = iio.imread(out, index=None)
    # three 64 x 64 panes side by side, each enlarged to 256 x 256, under the text bands
    assert frames.shape[0] == FRAMES and frames.shape[1] > 256
    assert frames.shape[2] == 2 * ANIMATION_MARGIN + 3 * 256 + 2 * ANIMATION_GAP
    assert [p.title for p in w.animation_panes()] == [
        "reference (RSS per frame)",
        w.traces["zero-filled"].label,
        w.traces["kt-l1"].label,
    ]
    assert w.animation_panes()[1].captions[0].startswith("PSNR ")
    sidecar = json.loads((tmp_path / "cine.gif.json").read_text())
    assert sidecar["dynamic"] is True and sidecar["frames"] == FRAMES
    assert sidecar["panes"] == [REFERENCE, "zero-filled", "kt-l1"]
    # the figure of one frame, with its JSON sidecar
    w.set_frame(4)
    fig = tmp_path / "frame.png"
    assert w.export_figure(fig)
    assert w.figure_spec().note.startswith("frame 4 of 0-11;")
    meta = json.loads((tmp_path / "frame.png.json").read_text())
    assert meta["frame"] == 4 and meta["mask"]["acceleration_per_frame"] == [8.0] * FRAMES


def test_export_animation_action_writes_an_mp4(cine_window, qtbot, tmp_path, monkeypatch):
    import imageio.v3 as iio
    from PyQt6.QtGui import QAction
    from PyQt6.QtWidgets import QFileDialog

    w = cine_window
    w.set_playing(False)
    assert not run_and_wait(qtbot, w, ["zero-filled"])
    action = next(a for a in w.findChildren(QAction) if "GIF/MP4" in a.text())
    out = tmp_path / "cine"  # no suffix: the chosen filter's is added
    monkeypatch.setattr(
        QFileDialog,
        "getSaveFileName",
        staticmethod(lambda *a, **k: (str(out), "MP4 video, H.264 (*.mp4)")),
    )
    action.trigger()
    mp4 = tmp_path / "cine.mp4"
    assert mp4.is_file() and (tmp_path / "cine.mp4.json").is_file()
    assert w.statusBar().currentMessage() == (
        f"animation written to {mp4} ({FRAMES} frames, 8 fps)"
    )
    frames = iio.imread(mp4, index=None)
    assert frames.shape[0] == FRAMES and not np.array_equal(frames[0], frames[5])
    assert json.loads((tmp_path / "cine.mp4.json").read_text())["panes"] == [
        REFERENCE,
        "zero-filled",
    ]
    # a failure is one line on the status bar, not an exception
    w.scripted = True  # no message box
    bad = tmp_path / "no-dir-file"
    bad.write_text("")
    monkeypatch.setattr(
        QFileDialog,
        "getSaveFileName",
        staticmethod(lambda *a, **k: (str(bad / "x.gif"), "GIF (*.gif)")),
    )
    action.trigger()
    message = w.statusBar().currentMessage()
    assert message.startswith("Cannot export animation: ") and "\n" not in message


def test_back_to_a_2d_file_leaves_the_cine_mode(cine_window, case_file):
    w = cine_window
    assert w.open_file(case_file, 0)
    assert not w.session.is_cine and not w.cine_bar.isVisible()
    assert w.kspace.ndim == 3 and w.effective_mask().ndim == 2
    assert "kt-l1" not in w.methods_panel.checked()


def test_scripted_mode_on_demo_cine(tmp_path):
    import os
    import subprocess
    import sys

    import imageio.v3 as iio

    shot, gif = tmp_path / "shot.png", tmp_path / "c.gif"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "MRIVIEWER_CONFIG_DIR": str(tmp_path),
        "MRIVIEWER_WORKER": "thread",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mriviewer", "demo-cine", "--run", "zero-filled,kt-l1"]
        + ["--accel", "4", "--frame", "2", "--size", "1000x720"]
        + ["--screenshot", str(shot), "--export-gif", str(gif), "--exit"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "k-t random R 4 per frame" in proc.stdout and "kt-l1" in proc.stdout
    assert shot.stat().st_size > 0
    assert iio.imread(gif, index=None).shape[0] == FRAMES
    assert json.loads((tmp_path / "c.gif.json").read_text())["frame"] == 2


def test_scripted_frame_out_of_range_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "MRIVIEWER_CONFIG_DIR": str(tmp_path),
        "MRIVIEWER_WORKER": "thread",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mriviewer", "demo-cine", "--frame", "12", "--exit"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--frame 12 is out of range: the series has frames 0-11" in proc.stderr


def test_cine_panel_strips_are_equally_wide_and_the_legend_leaves_the_curves_visible(qtbot):
    """x-t strips used to take their titles' widths, and the per-frame PSNR legend sat on the
    curves: every strip is now as wide as the others, and no curve point is under the legend."""
    import pyqtgraph as pg

    from mriviewer.gui.widgets.cine_widgets import CinePanel

    panel = CinePanel()
    qtbot.addWidget(panel)
    panel.resize(900, 260)
    panel.show()
    qtbot.waitExposed(panel)
    rng = np.random.default_rng(0)
    names = ["zero-filled", "cg-sense", "kt-l1", "model: cine-dense"]
    curves = {n: (n, c, list(25 + rng.random(FRAMES) + i)) for i, (n, c) in
              enumerate(zip(names, ["#f00", "#0f0", "#00f", "#ff0"], strict=True))}  # fmt: skip
    panel.set_frame_curves(curves)
    titles = [
        "reference (RSS per frame)",
        "zero-filled",
        "model: cine-dense, iteration 4, PSNR 22.5",
    ]
    panel.set_profiles({t: (t, rng.random((FRAMES, 64))) for t in titles}, (0.0, 1.0))
    qtbot.wait(50)
    widths = [
        image.getViewBox().sceneBoundingRect().width() for _, image in panel.profile_items.values()
    ]
    assert max(widths) - min(widths) < 1.0 and min(widths) > 100
    assert panel.profile_items[titles[2]][0].toolTip() == titles[2]
    view = panel.frame_plot.getViewBox()
    legend = panel.frame_plot.plotItem.legend.sceneBoundingRect()
    under = [
        (key, x)
        for key, item in panel.frame_curves.items()
        for x, y in zip(*item.getData(), strict=True)
        if legend.contains(view.mapViewToScene(pg.Point(x, y)))
    ]
    assert not under and legend.height() > 60
    # a taller panel keeps the curves clear of the legend too
    panel.resize(900, 420)
    qtbot.wait(50)
    legend = panel.frame_plot.plotItem.legend.sceneBoundingRect()
    assert not [
        x
        for item in panel.frame_curves.values()
        for x, y in zip(*item.getData(), strict=True)
        if legend.contains(view.mapViewToScene(pg.Point(x, y)))
    ]


def test_foreground_metrics_on_a_cine_series_match_eval(cine_window, qtbot, tmp_path):
    """The metrics-region combo works in the cine mode (it was greyed out): foreground metrics
    over each reference frame's foreground, the same figures `eval --metrics-region
    foreground` gives for the same k-t mask, and the reference line says so."""
    from mriviewer.core.cine import cine_metrics, prepare_cine_problem
    from mriviewer.core.reference import foreground_mask

    w = cine_window
    assert w.region_combo.isEnabled()
    w.region_combo.setCurrentIndex(w.region_combo.findData("foreground"))
    assert not run_and_wait(qtbot, w, ["zero-filled"])
    trace = w.traces["zero-filled"]
    assert trace.error is None
    shown = trace.metrics[-1]
    # the same problem by hand: metrics over the per-frame foreground
    problem = prepare_cine_problem(
        w.session.kspace,
        w.session.effective_mask(),
        w.session.cine_reference,
        metrics_region="foreground",
    )
    region = np.stack([foreground_mask(f) for f in problem.reference])
    np.testing.assert_array_equal(problem.foreground, region)
    assert 0.05 < region.mean() < 0.95
    expected = cine_metrics(problem.reference, np.abs(trace.images[-1]), region=region)
    assert shown["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)
    assert shown["psnr_per_frame"] == pytest.approx(expected["psnr_per_frame"], abs=1e-4)
    whole = cine_metrics(problem.reference, np.abs(trace.images[-1]))
    assert abs(whole["psnr"] - shown["psnr"]) > 0.1  # the region changes the figure
    info = w.session.provenance({})
    assert info["metrics_region"] == "foreground" and "foreground" in info["reference_definition"]


def test_cine_reconstructions_export_to_dicom_series_and_4d_nifti(cine_window, qtbot, tmp_path):
    """The app's reconstruction export on a cine series (refused before): DICOM writes one
    series per method, one file per frame; NIfTI one 4-D file per method."""
    import nibabel as nib
    import pydicom

    w = cine_window
    assert not run_and_wait(qtbot, w, ["zero-filled", "cg-sense"])
    assert w.export_recons(tmp_path / "r.dcm"), w.errors
    for number, key in enumerate(("zero-filled", "cg-sense"), start=1):
        files = sorted(tmp_path.glob(f"r_{key}_frame*.dcm"))
        assert len(files) == FRAMES
        frames = [pydicom.dcmread(f) for f in files]
        assert {int(d.SeriesNumber) for d in frames} == {number}
        assert [int(d.TemporalPositionIdentifier) for d in frames] == list(range(1, FRAMES + 1))
        slope = float(frames[0].RescaleSlope)
        final = np.abs(w.traces[key].images[-1])
        np.testing.assert_allclose(frames[7].pixel_array * slope, final[7], atol=slope / 2 + 1e-9)
    assert len({pydicom.dcmread(f).StudyInstanceUID for f in tmp_path.glob("*.dcm")}) == 1
    assert w.export_recons(tmp_path / "r.nii.gz"), w.errors
    image = nib.load(tmp_path / "r_cg-sense.nii.gz")
    assert image.shape == (64, 64, 1, FRAMES)
    np.testing.assert_allclose(
        np.asarray(image.dataobj)[:, :, 0, 3], np.abs(w.traces["cg-sense"].images[-1][3]), rtol=1e-5
    )
