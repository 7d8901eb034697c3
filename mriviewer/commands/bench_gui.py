"""``mriviewer bench gui``: event-loop latency of the desktop app while a long method runs.

A 10 ms QTimer on the UI thread records how late each tick arrives while the main window runs a
method in its worker thread (the same path as the Run button, with per-iteration streaming and
throttled repaints). Prints max / p95 / mean lateness; the target is < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

TARGET_MS = 50.0
TICK_MS = 10
IDLE_MS = 2000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="UI event-loop latency while a method runs in the worker")
    p.add_argument("--file", default="demo", help="k-space file (default: the demo case)")
    p.add_argument("--method", default="l1-wavelet", help="method to run (default: l1-wavelet)")
    p.add_argument("--max-iter", type=int, default=60, help="iterations of the method")
    p.add_argument("--accel", type=float, default=4.0, help="mask acceleration")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--idle-ms", type=int, default=IDLE_MS, help="idle baseline length (ms)")
    p.set_defaults(func=run_bench)


def lateness_stats(lateness_ms: list[float]) -> dict[str, float]:
    """max / p95 / mean of timer lateness samples in ms (0 for no samples)."""
    arr = np.asarray(lateness_ms, dtype=float)
    if arr.size == 0:
        return {"ticks": 0, "max_ms": 0.0, "p95_ms": 0.0, "mean_ms": 0.0}
    return {
        "ticks": int(arr.size),
        "max_ms": float(arr.max()),
        "p95_ms": float(np.percentile(arr, 95)),
        "mean_ms": float(arr.mean()),
    }


def run_bench(args: argparse.Namespace) -> int:
    if "QT_QPA_PLATFORM" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    try:
        import pyqtgraph as pg
        from PyQt6.QtCore import QElapsedTimer, QTimer
        from PyQt6.QtWidgets import QApplication
    except ImportError as exc:
        print(f"mriviewer: bench gui needs the 'gui' extra ({exc})", file=sys.stderr)
        return 1
    from mriviewer.core.errors import MriViewerError
    from mriviewer.gui.main_window import MainWindow

    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance() or QApplication(["mriviewer-bench"])
    window = MainWindow(scripted=True)
    window.resize(1600, 1000)
    if not window.open_file(args.file):
        raise MriViewerError(
            f"cannot open {args.file}: {window.errors[-1] if window.errors else ''}"
        )
    idx = window.methods_panel.device_combo.findText(args.device)
    if idx < 0:
        raise MriViewerError(f"device {args.device!r} is not available")
    window.methods_panel.device_combo.setCurrentIndex(idx)
    window.mask_panel.accel_spin.setValue(args.accel)
    window.show()
    app.processEvents()

    samples: list[tuple[float, float]] = []  # (time ms, lateness ms)
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setInterval(TICK_MS)
    last = [0]

    def tick() -> None:
        now = clock.elapsed()
        samples.append((float(now), max(0.0, float(now - last[0] - TICK_MS))))
        last[0] = now

    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    # idle baseline: the same timer with nothing running (machine load shows up here)
    idle_until = QElapsedTimer()
    idle_until.start()
    while idle_until.elapsed() < getattr(args, "idle_ms", IDLE_MS):
        app.processEvents()
        time.sleep(0.001)
    marks = {"run": float(clock.elapsed())}
    window.runFinished.connect(app.quit)
    settings = {args.method: {"max_iter": args.max_iter}} if args.max_iter else {}
    start = time.perf_counter()
    if not window.run([args.method], settings=settings):
        raise MriViewerError(
            f"cannot start {args.method}: {window.errors[-1] if window.errors else ''}"
        )
    window.controller.worker.prepared.connect(
        lambda _info: marks.setdefault("iterate", float(clock.elapsed()))
    )
    app.exec()
    timer.stop()
    wall = time.perf_counter() - start
    trace = window.traces.get(args.method)
    window.close()
    if trace is None or trace.error or not trace.iterations:
        reason = trace.error if trace is not None else "no result"
        raise MriViewerError(f"{args.method} failed: {reason}")
    t_iter = marks.get("iterate", marks["run"])
    phases = {
        "idle (baseline)": [lat for t, lat in samples if t < marks["run"]],
        "coil maps": [lat for t, lat in samples if marks["run"] <= t < t_iter],
        f"{args.method} iterations": [lat for t, lat in samples if t >= t_iter],
        "whole run": [lat for t, lat in samples if t >= marks["run"]],
    }
    print(
        f"bench gui: {args.method} ({trace.iterations[-1]} iterations, {wall:.2f} s) on "
        f"{window.volume.path.name} ({window.kspace.shape[0]} coils, "
        f"{window.kspace.shape[1]}x{window.kspace.shape[2]}), device {args.device}, "
        f"load average {_loadavg()}"
    )
    print(f"{'phase':<28} {'ticks':>6} {'max ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, lat in phases.items():
        st = lateness_stats(lat)
        print(
            f"{name:<28} {st['ticks']:>6d} {st['max_ms']:>8.1f} {st['p95_ms']:>8.1f} "
            f"{st['mean_ms']:>8.1f}"
        )
    st = lateness_stats(phases["whole run"])
    verdict = "PASS" if st["max_ms"] < TARGET_MS else "FAIL"
    print(
        f"UI event-loop lateness during the run (10 ms timer): max {st['max_ms']:.1f} ms, "
        f"p95 {st['p95_ms']:.1f} ms -> {verdict} (target max < {TARGET_MS:.0f} ms)"
    )
    return 0


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return fh.read().split()[0]
    except OSError:
        return "n/a"
