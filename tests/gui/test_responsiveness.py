"""What keeps the UI responsive while results stream in: curves whose ranges hold still, light
panes built ahead of a run in idle time, a compute process that yields the CPU to the UI, and
runs that announce their iteration count (no timing assertions: `mriviewer bench gui` measures).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PyQt6.QtCore import Qt

from mriviewer.gui.widgets.grid import ComparisonGrid
from mriviewer.gui.widgets.panels import CurvesWidget, nice_ceiling, padded_nice_range
from mriviewer.gui.workers import (
    COMPUTE_NICENESS,
    ComputeServer,
    RunRequest,
    compute_niceness,
    execute,
    expected_iterations,
)
from tests.conftest import phantom_case
from tests.gui.conftest import run_and_wait

pytestmark = pytest.mark.gui


def test_nice_ranges():
    assert [nice_ceiling(v) for v in (0, 5, 6, 11, 21, 60, 101)] == [5, 5, 10, 20, 50, 100, 200]
    assert padded_nice_range(21.3, 27.6) == (20.0, 28.0)
    assert padded_nice_range(0.52, 0.81) == (0.5, 0.9)
    lo, hi = padded_nice_range(5.0, 5.0)  # a flat curve still gets a range around it
    assert lo <= 5.0 < hi
    assert padded_nice_range(float("nan"), 1.0) == (0.0, 1.0)


def _y(widget: CurvesWidget, metric: str) -> list[float]:
    return list(widget.plots[metric].getViewBox().viewRange()[1])


def test_curve_ranges_hold_while_values_stay_inside(qtbot):
    widget = CurvesWidget()
    qtbot.addWidget(widget)
    widget.expect_iterations(40)
    x_range = list(widget.plots["psnr"].getViewBox().viewRange()[0])
    assert x_range[0] <= 0 and 40 <= x_range[1] < 42  # the whole run from the start

    psnr = [21.0, 23.0, 24.5, 25.2, 25.6]
    ssim = [0.52, 0.60, 0.64, 0.66, 0.67]
    widget.set_curve("a", "a", "#f00", [0], {"psnr": psnr[:1], "ssim": ssim[:1]})
    first = widget.y_range("psnr")
    assert first[0] <= 21.0 <= first[1]
    ranges = []
    for n in range(2, 6):
        widget.set_curve("a", "a", "#f00", list(range(n)), {"psnr": psnr[:n], "ssim": ssim[:n]})
        ranges.append(widget.y_range("psnr"))
    lo, hi = ranges[-1]
    assert lo <= min(psnr) and max(psnr) <= hi
    assert len(set(ranges)) <= 3  # grown in whole steps, not once per iteration
    shown = _y(widget, "psnr")
    # a value inside the range changes nothing
    widget.set_curve("b", "b", "#0f0", [0, 1], {"psnr": [22.0, 24.0], "ssim": [0.6, 0.62]})
    assert _y(widget, "psnr") == shown
    assert list(widget.plots["psnr"].getViewBox().viewRange()[0]) == x_range
    # beyond the announced iterations the x axis grows to a round number
    widget.set_iteration_span(57)
    assert 60 <= widget.plots["psnr"].getViewBox().viewRange()[0][1] <= 102

    # a range the user set by hand is left alone
    view = widget.plots["psnr"].getViewBox()
    view.setYRange(0, 100, padding=0)
    view.sigRangeChangedManually.emit([False, True])
    widget.set_curve("c", "c", "#00f", [0, 1], {"psnr": [30.0, 35.0], "ssim": [0.9, 0.95]})
    assert _y(widget, "psnr") == [0, 100]
    widget.clear_curves()
    assert widget.y_range("psnr") is None


def test_grid_builds_spare_panes_in_idle_time_and_lays_them_out(qtbot):
    grid = ComparisonGrid()
    qtbot.addWidget(grid)
    grid.resize(900, 400)
    grid.show()
    grid.set_panes(["reference"])
    grid.keep_spare_panes(2)
    assert grid.spare_count() == 0  # built later, one per event-loop turn
    qtbot.waitUntil(lambda: grid.spare_count() == 2, timeout=5000)
    spares = list(grid._spares)
    grid.set_panes(["reference", "cg-sense", "l1-wavelet"])
    assert {id(grid.panes[n]) for n in ("cg-sense", "l1-wavelet")} == {id(p) for p in spares}
    assert grid.panes["cg-sense"].title == "cg-sense"
    assert grid.spare_count() == 0
    # error maps are built only when shown, for panes and spares alike
    assert not any(p.has_error_view for p in grid.panes.values())
    grid.keep_spare_panes(1)
    grid.set_error_visible(True)
    assert grid.panes["cg-sense"].has_error_view and grid.panes["l1-wavelet"].has_error_view
    assert not grid.panes["reference"].has_error_view  # the reference has no error map
    qtbot.waitUntil(
        lambda: grid.spare_count() == 1 and grid._spares[0].has_error_view, timeout=5000
    )
    image = np.ones((8, 8), np.float32)
    grid.set_image("cg-sense", image, title="cg-sense<br>PSNR 30.00 dB", error=image * 0.1)
    assert grid.panes["cg-sense"].error_image.image is not None
    # a removed pane goes back to the spares, cleared
    grid.keep_spare_panes(2)
    removed = grid.panes["l1-wavelet"]
    grid.set_panes(["reference", "cg-sense"])
    assert removed in grid._spares and removed.data is None


def _request(methods: list[str], settings: dict) -> RunRequest:
    kspace, image, _maps = phantom_case(32, 32, 4, seed=1)
    mask = np.zeros((32, 32), bool)
    mask[:, ::2] = True
    mask[:, 12:20] = True
    return RunRequest(
        kspace=kspace,
        mask=mask,
        reference=np.abs(image).astype(np.float32),
        recon_matrix=(32, 32),
        methods=methods,
        settings=settings,
    )


def test_methods_announce_their_iteration_count():
    assert expected_iterations({"max_iter": 30, "lamda": 0.01}) == 30
    assert expected_iterations({"unrolls": 8}) == 8
    assert expected_iterations({"combine": "sense"}) is None
    assert expected_iterations({"max_iter": True}) is None
    request = _request(["zero-filled", "cg-sense"], {"cg-sense": {"max_iter": 3, "tol": 0.0}})
    messages = list(execute(request, lambda: False))
    kinds = [m[0] for m in messages]
    started = [m for m in messages if m[0] == "method_started"]
    assert [(m[1], m[2]["expected_iterations"]) for m in started] == [
        ("zero-filled", None),
        ("cg-sense", 3),
    ]
    first_cg = next(
        i for i, m in enumerate(messages) if m[0] == "iteration" and m[1].method == "cg-sense"
    )
    assert kinds.index("method_started", kinds.index("method_started") + 1) < first_cg


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no Unix priorities here")
def test_compute_process_priority_can_be_lowered(qtbot, monkeypatch):
    assert compute_niceness() == COMPUTE_NICENESS
    monkeypatch.setenv("MRIVIEWER_COMPUTE_NICE", "3")
    assert compute_niceness() == 3
    server = ComputeServer()
    try:
        want = min(os.getpriority(os.PRIO_PROCESS, 0) + 3, 19)
        qtbot.waitUntil(
            lambda: os.getpriority(os.PRIO_PROCESS, server.process.pid) == want, timeout=30000
        )
    finally:
        server.shutdown()
    monkeypatch.setenv("MRIVIEWER_COMPUTE_NICE", "lots")
    assert compute_niceness() == COMPUTE_NICENESS


def test_run_uses_spare_panes_and_shows_the_announced_iterations(window, qtbot):
    window.methods_panel.set_checked(["zero-filled", "cg-sense"])
    missing = [m for m in ("zero-filled", "cg-sense") if m not in window.grid.panes]
    qtbot.waitUntil(lambda: window.grid.spare_count() >= len(missing), timeout=5000)
    spares = {id(p) for p in window.grid._spares}
    with qtbot.waitSignal(window.runFinished, timeout=60000):
        qtbot.mouseClick(window.methods_panel.run_button, Qt.MouseButton.LeftButton)
    assert all(id(window.grid.panes[m]) in spares for m in missing)
    cg = window.traces["cg-sense"]
    span = window.curves.plots["psnr"].getViewBox().viewRange()[0][1]
    announced = window.curves._expected
    assert announced >= max(cg.iterations) and span == pytest.approx(announced * 1.02, abs=0.5)
    # a second run of the same methods reuses the panes and builds no spares
    panes = {k: id(p) for k, p in window.grid.panes.items()}
    assert run_and_wait(qtbot, window, ["zero-filled", "cg-sense"]) is False
    assert {k: id(p) for k, p in window.grid.panes.items()} == panes
    assert window.grid.spare_count() == 0 or window.grid._spare_target == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS needs /proc")
def test_methods_report_their_peak_memory():
    request = _request(["cg-sense"], {"cg-sense": {"max_iter": 3, "tol": 0.0}})
    summary = next(m[2] for m in execute(request, lambda: False) if m[0] == "method_finished")
    assert 0.0 < summary["peak_memory_mb"] < 2000.0
