"""``mriviewer bench gui``: event-loop latency of the desktop app while a long method runs.

A 10 ms QTimer on the UI thread records how late each tick arrives while the main window runs a
method in its worker thread (the same path as the Run button, with per-iteration streaming and
throttled repaints). The methods are checked in the Methods panel first, as a user would before
pressing Run. Prints max / p95 / mean lateness for the idle baseline, the run start (pane
layout and coil maps), each method's iterations and the whole run; the target is < 50 ms.
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
    p.add_argument(
        "--method",
        default="l1-wavelet",
        help="method(s) to run, comma-separated, e.g. cg-sense,l1-wavelet,model:dense "
        "(default: l1-wavelet)",
    )
    p.add_argument(
        "--max-iter", type=int, default=60, help="iterations of the classical iterative methods"
    )
    p.add_argument("--errors", action="store_true", help="show the error maps during the run")
    p.add_argument("--size", default="1600x1000", help="window size WxH (default 1600x1000)")
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
        from PyQt6.QtCore import QElapsedTimer, QTimer
        from PyQt6.QtWidgets import QApplication
    except ImportError as exc:
        print(f"mriviewer: bench gui needs the 'gui' extra ({exc})", file=sys.stderr)
        return 1
    from mriviewer.core.errors import MriViewerError
    from mriviewer.gui.app import configure_pyqtgraph
    from mriviewer.gui.main_window import MainWindow
    from mriviewer.gui.platform_check import platform_problem

    problem = None if QApplication.instance() else platform_problem()
    if problem:  # missing xcb libraries: name them instead of Qt's abort
        print(problem, file=sys.stderr)
        return 1
    configure_pyqtgraph()
    app = QApplication.instance() or QApplication(["mriviewer-bench"])
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    if not methods:
        raise MriViewerError("--method: give at least one method")
    try:
        width, height = (int(v) for v in getattr(args, "size", "1600x1000").lower().split("x"))
    except ValueError as exc:
        raise MriViewerError(f"--size must look like 1600x1000, got {args.size!r}") from exc
    window = MainWindow(scripted=True)
    window.resize(width, height)
    if not window.open_file(args.file):
        raise MriViewerError(
            f"cannot open {args.file}: {window.errors[-1] if window.errors else ''}"
        )
    idx = window.methods_panel.device_combo.findText(args.device)
    if idx < 0:
        raise MriViewerError(f"device {args.device!r} is not available")
    window.methods_panel.device_combo.setCurrentIndex(idx)
    window.mask_panel.accel_spin.setValue(args.accel)
    methods = [_panel_key(window, m) for m in methods]
    window.methods_panel.set_checked(methods)  # as a user would before pressing Run
    if getattr(args, "errors", False):
        window.grid.set_error_visible(True)
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
    # when each method's first image reaches its pane (what the user waits for after Run)
    first_shown: dict[str, float] = {}
    set_image = window.grid.set_image

    def recording_set_image(name, *a, **kw):
        first_shown.setdefault(name, float(clock.elapsed()))
        return set_image(name, *a, **kw)

    window.grid.set_image = recording_set_image
    iterative = ("cg-sense", "l1-wavelet")
    settings = {m: {"max_iter": args.max_iter} for m in methods if m in iterative and args.max_iter}
    start = time.perf_counter()
    if not window.run(methods, settings=settings):
        raise MriViewerError(
            f"cannot start {args.method}: {window.errors[-1] if window.errors else ''}"
        )
    starts: list[tuple[str, float]] = []  # (method, time its first message arrived)
    worker = window.controller.worker
    worker.method_started.connect(lambda name, _info: starts.append((name, clock.elapsed())))
    worker.prepared.connect(lambda _info: marks.setdefault("prepared", float(clock.elapsed())))
    maps_took: list[str] = []
    worker.status.connect(
        lambda text: (
            maps_took.append(text[len("coil maps in ") :])
            if text.startswith("coil maps in ")
            else None
        )
    )
    app.exec()
    timer.stop()
    wall = time.perf_counter() - start
    traces = {m: window.traces.get(m) for m in methods}
    window.close()
    for name, trace in traces.items():
        if trace is None or trace.error or not trace.iterations:
            reason = trace.error if trace is not None else "no result"
            raise MriViewerError(f"{window.methods_panel.label(name)} failed: {reason}")
    run_at = marks["run"]
    label = window.methods_panel.label
    bounds = [("start + coil maps", run_at)]
    bounds += [(f"{label(n)} iterations", float(t)) for n, t in starts]
    phases = {"idle (baseline)": [lat for t, lat in samples if t < run_at]}
    for i, (name, t0) in enumerate(bounds):
        t1 = bounds[i + 1][1] if i + 1 < len(bounds) else float("inf")
        phases[name] = [lat for t, lat in samples if t0 <= t < t1]
    phases["whole run"] = [lat for t, lat in samples if t >= run_at]
    done = ", ".join(f"{label(n)} {t.iterations[-1]} it" for n, t in traces.items())
    print(
        f"bench gui: {done} in {wall:.2f} s on {window.volume.path.name} "
        f"({window.kspace.shape[0]} coils, {window.kspace.shape[1]}x{window.kspace.shape[2]}), "
        f"device {args.device}, window {width}x{height}"
        f"{', error maps on' if getattr(args, 'errors', False) else ''}, "
        f"load average {_loadavg()}"
    )
    print(f"{'phase':<34} {'ticks':>6} {'max ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, lat in phases.items():
        st = lateness_stats(lat)
        print(
            f"{name:<34} {st['ticks']:>6d} {st['max_ms']:>8.1f} {st['p95_ms']:>8.1f} "
            f"{st['mean_ms']:>8.1f}"
        )
    shown = [
        f"{label(n)} {(first_shown[n] - run_at) / 1000:.2f} s" for n in methods if n in first_shown
    ]
    if maps_took:
        shown.insert(0, f"coil maps took {maps_took[0]}")
    if "prepared" in marks:
        shown.insert(0, f"problem prepared {(marks['prepared'] - run_at) / 1000:.2f} s")
    print("after Run: " + ", ".join(shown) + " (first image of each method on screen)")
    st = lateness_stats(phases["whole run"])
    verdict = "PASS" if st["max_ms"] < TARGET_MS else "FAIL"
    print(
        f"UI event-loop lateness during the run (10 ms timer): max {st['max_ms']:.1f} ms, "
        f"p95 {st['p95_ms']:.1f} ms -> {verdict} (target max < {TARGET_MS:.0f} ms)"
    )
    return 0


def _panel_key(window, method: str) -> str:
    """The Methods panel's key for ``method`` (a zoo model ``model:NAME`` is listed by path)."""
    panel = window.methods_panel
    if method in panel.keys() or not method.startswith("model:"):
        return method
    name = method[len("model:") :]
    for key in panel.keys():
        if panel.label(key) == f"model: {name}":
            return key
    return method


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return fh.read().split()[0]
    except OSError:
        return "n/a"
