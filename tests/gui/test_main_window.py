"""The desktop app driven through its real widgets (pytest-qt, offscreen)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PyQt6.QtCore import QMimeData, QPointF, Qt, QUrl
from PyQt6.QtGui import QDropEvent
from PyQt6.QtWidgets import QDialog, QMessageBox

from mriviewer.core.figures import sha256_file
from tests.gui.conftest import SLOW_MODULE, run_and_wait

pytestmark = pytest.mark.gui


def test_open_shows_header_slices_coils_and_reference(window, case_file):
    text = window.data_panel.summary.toPlainText()
    assert str(case_file) in text and "coils 4" in text and "slices   2" in text
    assert window.data_panel.coil_combo.count() == 5  # RSS + 4 coils
    ref_pane = window.grid.panes["reference"]
    assert ref_pane.data is not None and ref_pane.data.shape == (48, 48)
    # window/level defaults to the reference's 1st-99th percentile
    lo, hi = window.grid.levels()
    assert (lo, hi) == pytest.approx(tuple(np.percentile(window.reference, [1, 99])), rel=1e-5)
    before = window.kspace_view.image.image.copy()
    window.data_panel.coil_combo.setCurrentIndex(2)
    assert not np.allclose(before, window.kspace_view.image.image)
    window.data_panel.slice_spin.setValue(1)
    assert window.volume.slice_index == 1
    assert str(case_file.resolve()) in window.recent_files()


def test_mask_controls_update_mask_and_achieved_r(window, qtbot):
    panel = window.mask_panel
    panel.kind_combo.setCurrentIndex(panel.kind_combo.findData("equispaced"))
    panel.accel_spin.setValue(3.0)
    arr = window.mask.array
    assert window.mask.spec.kind == "equispaced" and window.mask.spec.acceleration == 3.0
    assert np.all(arr == arr[:1])  # 1-D: whole lines
    assert f"{window.mask.achieved_acceleration:.2f}" in panel.achieved_label.text()
    panel.kind_combo.setCurrentIndex(panel.kind_combo.findData("poisson"))
    assert not np.all(window.mask.array == window.mask.array[:1])
    assert window.kspace_view.overlay.image.shape[:2] == (48, 48)


def test_click_on_kspace_adds_and_removes_lines(window, qtbot):
    window.mask_panel.kind_combo.setCurrentIndex(window.mask_panel.kind_combo.findData("random"))
    arr = window.mask.array
    col = int(np.flatnonzero(~arr[0])[0])
    before = window.mask.achieved_acceleration
    window.mask_panel.edit_combo.setCurrentIndex(window.mask_panel.edit_combo.findData("add"))
    view = window.kspace_view
    view.view.autoRange(padding=0)
    qtbot.wait(50)
    scene_pt = view.view.mapViewToScene(QPointF(col + 0.5, 20.5))
    widget_pt = view.mapFromScene(scene_pt)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=widget_pt)
    assert window.mask.array[:, col].all()
    assert window.mask.spec.kind == "array"
    assert window.mask_panel.kind() == "array"
    assert window.mask.achieved_acceleration < before
    assert f"{window.mask.achieved_acceleration:.2f}" in window.mask_panel.achieved_label.text()
    window.mask_panel.edit_combo.setCurrentIndex(window.mask_panel.edit_combo.findData("remove"))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=widget_pt)
    assert not window.mask.array[:, col].any()


def test_run_slider_curves_and_table(window, qtbot):
    window.methods_panel.set_checked(["zero-filled", "cg-sense"])
    with qtbot.waitSignal(window.runFinished, timeout=60000) as blocker:
        qtbot.mouseClick(window.methods_panel.run_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [False]
    cg = window.traces["cg-sense"]
    assert cg.complete and len(cg.iterations) > 2 and cg.iterations[0] == 0
    assert window.traces["zero-filled"].iterations == [0]
    top = window.iter_slider.maximum()
    assert top == max(cg.iterations) and window.iter_slider.value() == top
    final_cg = window.grid.panes["cg-sense"].data.copy()
    final_zf = window.grid.panes["zero-filled"].data.copy()
    assert "PSNR" in window.grid.panes["cg-sense"].title
    window.iter_slider.setValue(1)
    assert window.curves.marker_value() == 1
    assert not np.allclose(window.grid.panes["cg-sense"].data, final_cg)
    # zero-filled has only iteration 0: it keeps showing it
    np.testing.assert_array_equal(window.grid.panes["zero-filled"].data, final_zf)
    assert window.iter_label.text().startswith("1 /")
    assert window.table.cell_text(1, "iteration") == "1"
    psnr_shown = float(window.table.cell_text(1, "PSNR (dB)"))
    assert psnr_shown == pytest.approx(cg.metrics[1]["psnr"], abs=0.01)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.iter_slider.value() == 2 and window.curves.marker_value() == 2
    curve = window.curves.curves[("psnr", "cg-sense")]
    assert len(curve.xData) == len(cg.iterations)
    assert "data_range" in window.metrics_note.text()
    # all panes share one window/level
    levels = {tuple(p.image.levels) for p in window.grid.panes.values()}
    assert len(levels) == 1


def test_cancel_stops_within_an_iteration(window, qtbot, slow_method):
    with qtbot.waitSignal(window.runFinished, timeout=30000) as blocker:
        window.run([slow_method])
        worker = window.controller.worker
        qtbot.waitUntil(lambda: len(window.traces[slow_method].iterations) >= 3, timeout=20000)
        qtbot.keyClick(window, Qt.Key.Key_Escape)
        assert worker.cancelled
    assert blocker.args == [True]
    assert worker.emitted_after_cancel <= 1  # only the iteration in flight
    trace = window.traces[slow_method]
    assert not trace.complete and len(trace.iterations) < 400
    assert "cancelled" in window.methods_panel.progress.text()
    assert window.methods_panel.run_button.isEnabled()
    assert not window.controller.running


def test_close_while_running_stops_worker(qtbot, case_file, slow_method):
    from mriviewer.gui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.plugin_modules.append(SLOW_MODULE)
    assert win.open_file(case_file)
    win.show()
    win.run([slow_method])
    qtbot.waitUntil(lambda: len(win.traces[slow_method].iterations) >= 1, timeout=20000)
    thread = win.controller.thread
    win.close()
    assert thread.isFinished()


def test_display_modes_error_maps_roi_and_levels_keys(window, qtbot):
    run_and_wait(qtbot, window, ["zero-filled"])
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert window.display_mode == "phase"
    assert window.grid.levels() == pytest.approx((-np.pi, np.pi))
    qtbot.keyClick(window, Qt.Key.Key_M)
    lo, hi = window.grid.levels()
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    lo2, hi2 = window.grid.levels()
    assert lo2 < lo and hi2 < hi and (hi2 - lo2) == pytest.approx(hi - lo)
    qtbot.keyClick(window, Qt.Key.Key_BraceRight)
    lo3, hi3 = window.grid.levels()
    assert (hi3 - lo3) < (hi2 - lo2)
    window.set_error_maps(True)
    err = window.grid.panes["zero-filled"].error
    assert err is not None and err.shape == (48, 48) and err.max() > 0
    window.set_roi(True)
    stats = window.grid.roi_stats()
    assert set(stats) == {"reference", "zero-filled"}
    assert window.table.cell_text(0, "ROI mean") != "–"
    # moving one ROI moves all of them
    window.grid.panes["zero-filled"].roi.setPos([5, 6])
    assert list(window.grid.panes["reference"].roi.pos()) == [5, 6]


def test_shortcuts_dialog_lists_keys(window, qtbot):
    dialog = window.show_shortcuts()
    assert isinstance(dialog, QDialog) and dialog.isVisible()
    table = dialog.findChild(type(window.table).__mro__[1])
    keys = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert "Ctrl+R" in keys and "Esc" in keys and "m p r i l" in keys


def test_export_figure_metrics_and_recons(window, qtbot, tmp_path):
    run_and_wait(qtbot, window, ["zero-filled", "cg-sense"])
    for suffix, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")):
        out = tmp_path / f"figure.{suffix}"
        assert window.export_figure(out), window.errors
        assert out.read_bytes()[:5].startswith(magic)
    side = json.loads((tmp_path / "figure.pdf.json").read_text())
    assert side["figure"]["sha256"] == sha256_file(tmp_path / "figure.pdf")
    assert side["file"]["sha256"] == sha256_file(window.volume.path)
    assert side["slice"] == 0 and side["mask"]["spec"]["kind"] == "random"
    assert [m["name"] for m in side["methods"]] == ["zero-filled", "cg-sense"]
    assert side["levels"] == pytest.approx(list(window.grid.levels()))
    assert window.export_metrics(tmp_path / "m.csv") and window.export_metrics(tmp_path / "m.json")
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0].startswith("method,iteration,psnr")
    assert len(lines) == 1 + 1 + len(window.traces["cg-sense"].iterations)
    assert window.export_recons(tmp_path / "r.npy") and window.export_recons(tmp_path / "r.h5")
    stack = np.load(tmp_path / "r.npy")
    assert stack.shape == (2, 48, 48) and np.iscomplexobj(stack)
    from mriviewer.core.export import read_recon_h5

    # the one reconstruction layout (the same as `mriviewer recon`'s), every iteration kept
    back = read_recon_h5(tmp_path / "r.h5")
    cg = back["methods"]["cg-sense"]
    assert cg["iterations"].shape[0] == len(window.traces["cg-sense"].iterations)
    np.testing.assert_array_equal(cg["final"], window.traces["cg-sense"].images[-1])
    assert cg["metrics"]["psnr"] == pytest.approx(window.traces["cg-sense"].metrics[-1]["psnr"])
    np.testing.assert_array_equal(back["mask"], window.effective_mask())
    assert not window.export_figure(tmp_path / "figure.bmp")
    assert "unsupported figure format" in window.errors[-1]


def test_session_save_and_restore(window, qtbot, tmp_path, case_file):
    from mriviewer.gui.main_window import MainWindow

    window.data_panel.slice_spin.setValue(1)
    window.mask_panel.kind_combo.setCurrentIndex(window.mask_panel.kind_combo.findData("poisson"))
    window.mask_panel.accel_spin.setValue(3.0)
    window.mask_panel.seed_spin.setValue(7)
    window.methods_panel.set_checked(["cg-sense", "l1-wavelet"])
    window.set_display_mode("real")
    window.grid.set_levels(-5.0, 7.0)
    window.set_error_maps(True)
    window.grid.set_roi_state({"pos": [4, 5], "size": [10, 12]})
    assert window.save_session(tmp_path / "s.json")

    other = MainWindow()
    qtbot.addWidget(other)
    assert other.restore_session(tmp_path / "s.json"), other.errors
    assert other.volume.path == window.volume.path and other.volume.slice_index == 1
    assert other.mask.spec.kind == "poisson" and other.mask.spec.seed == 7
    np.testing.assert_array_equal(other.mask.array, window.mask.array)
    assert other.methods_panel.checked() == ["cg-sense", "l1-wavelet"]
    assert other.display_mode == "real" and other.grid.error_visible
    assert other.grid.levels() == pytest.approx((-5.0, 7.0))
    assert other.grid.roi_state() == {"pos": [4, 5], "size": [10, 12]}


def test_user_drawn_mask_survives_session(window, qtbot, tmp_path):
    from mriviewer.gui.main_window import MainWindow

    window.kspace_view.set_edit_mode("add")
    col = int(np.flatnonzero(~window.mask.array[0])[0])
    window.edit_mask(3, col)
    assert window.save_session(tmp_path / "s.json")
    assert (tmp_path / "s.mask.npy").is_file()
    other = MainWindow()
    qtbot.addWidget(other)
    assert other.restore_session(tmp_path / "s.json"), other.errors
    np.testing.assert_array_equal(other.mask.array, window.mask.array)
    assert other.mask_panel.kind() == "array"
    assert window.save_mask(tmp_path / "mask.npy")
    window.mask_panel.kind_combo.setCurrentIndex(0)
    assert window.load_mask(tmp_path / "mask.npy")
    np.testing.assert_array_equal(window.mask.array, other.mask.array)


def test_corrupt_file_shows_message_and_keeps_case(window, qtbot, tmp_path, case_file):
    run_and_wait(qtbot, window, ["zero-filled"])
    ref_before = window.grid.panes["reference"].data.copy()
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 50)
    assert not window.open_file(bad)
    assert "broken.h5" in window.error_label.text()
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "errorDialog"]
    assert boxes and "broken.h5" in boxes[-1].text()
    assert any(w in boxes[-1].text() for w in ("corrupt", "unrecognised", "cannot read"))
    assert window.volume.path == case_file
    np.testing.assert_array_equal(window.grid.panes["reference"].data, ref_before)
    assert "zero-filled" in window.traces and window.traces["zero-filled"].complete
    assert not window.load_mask(tmp_path / "missing.npy")
    assert "missing.npy" in window.errors[-1]
    assert not window.restore_session(bad)
    assert window.volume.path == case_file


def test_bad_model_file_is_reported(window, tmp_path):
    bad = tmp_path / "nonsense.safetensors"
    bad.write_bytes(b"not a safetensors file")
    count = window.methods_panel.list.count()
    assert not window.open_model(bad)
    assert "nonsense.safetensors" in window.errors[-1]
    assert window.methods_panel.list.count() == count


def test_zoo_models_appear_with_cards(window):
    checkpoints = pytest.importorskip("mriviewer.core.checkpoints")
    models = checkpoints.list_models()
    if not models:
        pytest.skip("the model zoo is empty in this checkout")
    keys = window.methods_panel.keys()
    for entry in models:
        key = f"model:{entry.get('path') or entry['name']}"
        assert key in keys
        window.methods_panel.select(key)
        assert window.methods_panel.card.toPlainText().strip()


def test_drop_file_opens_it(window, case_file, tmp_path):
    from mriviewer.core.io import write_fastmri
    from tests.conftest import phantom_case

    other = tmp_path / "dropped.h5"
    write_fastmri(other, phantom_case(32, 32, 2)[0][None])
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert window.volume.path == other
    assert window.grid.panes["reference"].data.shape == (32, 32)


def test_open_model_shows_card_and_runs_per_unroll(window, qtbot, tmp_path):
    checkpoints = pytest.importorskip("mriviewer.core.checkpoints")
    from mriviewer.core.models.unrolled import MoDL

    weights = checkpoints.save_model(
        tmp_path / "tiny.safetensors",
        MoDL(num_unrolls=2, features=8, depth=2, cg_iters=3),
        {"strategy": {"name": "dense"}},
    )
    assert window.open_model(weights), window.errors
    key = f"model:{weights.resolve()}"
    assert key in window.methods_panel.checked()
    card_text = window.methods_panel.card.toPlainText()
    assert "modl" in card_text and "parameters" in card_text
    assert not run_and_wait(qtbot, window, ["zero-filled", key])
    trace = window.traces[key]
    assert trace.iterations == [0, 1, 2] and trace.complete, trace.error
    assert window.grid.panes[key].data.shape == (48, 48)
    side = window.provenance()
    entry = next(m for m in side["methods"] if m["name"] == key)
    assert len(entry["model_card_sha256"]) == 64 and len(entry["weights_sha256"]) == 64


def test_thread_backend_gives_the_same_results(window, qtbot, monkeypatch):
    run_and_wait(qtbot, window, ["cg-sense"])
    by_process = window.traces["cg-sense"]
    monkeypatch.setenv("MRIVIEWER_WORKER", "thread")
    run_and_wait(qtbot, window, ["cg-sense"])
    assert window.controller.thread is None or not window.controller.running
    by_thread = window.traces["cg-sense"]
    assert by_thread.iterations == by_process.iterations and by_thread.complete
    np.testing.assert_allclose(by_thread.images[-1], by_process.images[-1], rtol=1e-4, atol=1e-4)


def test_error_reasons_name_out_of_memory():
    from mriviewer.core.errors import ReconError
    from mriviewer.gui.workers import describe_error

    assert describe_error(MemoryError("cannot allocate"), "cpu").startswith("out of memory on cpu")
    assert describe_error(ReconError("bad", "/x.h5"), "cpu") == "/x.h5: bad"
    assert describe_error(ValueError("odd"), "cuda:0") == "ValueError: odd"


def test_figure_sidecar_keeps_user_drawn_mask(window, qtbot, tmp_path):
    window.kspace_view.set_edit_mode("remove")
    col = int(np.flatnonzero(window.mask.array[0])[0])
    window.edit_mask(0, col)
    run_and_wait(qtbot, window, ["zero-filled"])
    assert window.export_figure(tmp_path / "f.png")
    side = json.loads((tmp_path / "f.png.json").read_text())
    mask_file = tmp_path / side["mask"]["file"]
    assert side["mask"]["sha256"] == sha256_file(mask_file)
    np.testing.assert_array_equal(np.load(mask_file), window.mask.array)


def test_drag_acs_band_changes_centre(window):
    window.mask_panel.kind_combo.setCurrentIndex(window.mask_panel.kind_combo.findData("random"))
    c0, c1 = window.acs_band()
    band = window.kspace_view.acs_band
    assert band.isVisible() and band.getRegion() == (c0, c1)
    band.setRegion((c0 - 3, c1 + 3))
    band.sigRegionChangeFinished.emit(band)
    assert window.acs_band()[0] <= c0 - 3 and window.acs_band()[1] >= c1 + 3
    assert window.mask.array[:, c0 - 3 : c1 + 3].all()
    assert window.mask_panel.kind() == "array"
    window.mask_panel.kind_combo.setCurrentIndex(window.mask_panel.kind_combo.findData("poisson"))
    assert not band.isVisible()
