"""``mriviewer bench gui``: event-loop latency of the desktop app while a long method runs.

A 10 ms QTimer on the UI thread records how late each tick arrives while the main window runs a
method in its worker thread (the same path as the Run button, with per-iteration streaming and
throttled repaints). The methods are checked in the Methods panel first, as a user would before
pressing Run. Prints max / p95 / mean lateness for the idle baseline, the run start (pane
layout and coil maps), each method's iterations and the whole run; the target is < 50 ms.

On a cine series the run is followed by playback: the frame bar's Play button at ``--fps`` for
``--play-seconds`` with every pane shown (and the error maps with ``--errors``); it reports the
frames shown per second against the requested rate, the lateness during playback (one more
phase row) and the median time from moving the frame slider to the panes repainted with the new
frame. ``--json OUT.json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

TARGET_MS = 50.0
TICK_MS = 10
IDLE_MS = 2000
PLAY_FPS = 25.0
PLAY_SECONDS = 3.0


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
        "--max-iter",
        type=int,
        default=60,
        help="max_iter of cg-sense and l1-wavelet (default 60; on a cine file cg-sense solves the "
        "frames as one batched CG, one iteration a step on every frame; kt-l1 keeps its 30)",
    )
    p.add_argument("--errors", action="store_true", help="show the error maps during the run")
    p.add_argument("--size", default="1600x1000", help="window size WxH (default 1600x1000)")
    p.add_argument("--accel", type=float, default=4.0, help="mask acceleration")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--idle-ms", type=int, default=IDLE_MS, help="idle baseline length (ms)")
    p.add_argument(
        "--fps", type=float, default=PLAY_FPS, help="cine: playback rate after the run (0.5-60)"
    )
    p.add_argument(
        "--play-seconds",
        type=float,
        default=PLAY_SECONDS,
        help="cine: how long to play the series after the run (0: no playback)",
    )
    p.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
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
        from PyQt6.QtCore import QElapsedTimer, QEventLoop, QTimer
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
    fps = float(getattr(args, "fps", PLAY_FPS))
    if not 0.5 <= fps <= 60:
        raise MriViewerError(f"--fps must be 0.5-60 (the frame bar's range), got {fps:g}")
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
    # a local loop: QApplication.quit() would close the window (Qt 6), which playback needs
    loop = QEventLoop()
    window.runFinished.connect(loop.quit)
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
    loop.exec()
    wall = time.perf_counter() - start
    marks["finished"] = float(clock.elapsed())
    traces = {m: window.traces.get(m) for m in methods}
    failed = [
        (name, trace.error if trace is not None else "no result")
        for name, trace in traces.items()
        if trace is None or trace.error or not trace.iterations
    ]
    cine = bool(getattr(window.session, "is_cine", False))
    play_seconds = float(getattr(args, "play_seconds", PLAY_SECONDS) or 0.0)
    playback = None
    if cine and not failed and play_seconds > 0:
        playback = _playback(app, window, clock, fps, play_seconds)
    timer.stop()
    window.close()
    label = window.methods_panel.label
    for name, reason in failed:
        raise MriViewerError(f"{label(name)} failed: {reason}")
    run_at, finished = marks["run"], marks["finished"]
    bounds = [("start + coil maps", run_at)]
    bounds += [(f"{label(n)} iterations", float(t)) for n, t in starts]
    phases = {"idle (baseline)": [lat for t, lat in samples if t < run_at]}
    for i, (name, t0) in enumerate(bounds):
        t1 = bounds[i + 1][1] if i + 1 < len(bounds) else finished
        phases[name] = [lat for t, lat in samples if t0 <= t < t1]
    phases["whole run"] = [lat for t, lat in samples if run_at <= t < finished]
    play_row = None
    if playback is not None:
        play_row = f"cine playback ({playback['fps_requested']:g} fps)"
        t0, t1 = playback.pop("_span")
        phases[play_row] = [lat for t, lat in samples if t0 <= t < t1]
    done = ", ".join(f"{label(n)} {t.iterations[-1]} it" for n, t in traces.items())
    shape = window.kspace.shape
    if cine:  # (T, C, H, W)
        data = f"cine: {shape[0]} frames, {shape[1]} coils, {shape[2]} x {shape[3]}"
    else:  # (C, H, W)
        data = f"{shape[0]} coils, {shape[1]}x{shape[2]}"
    load = _loadavg()
    print(
        f"bench gui: {done} in {wall:.2f} s on {window.volume.path.name} ({data}), "
        f"device {args.device}, window {width}x{height}"
        f"{', error maps on' if getattr(args, 'errors', False) else ''}, "
        f"load average {load}"
    )
    print(f"{'phase':<34} {'ticks':>6} {'max ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    stats = {name: lateness_stats(lat) for name, lat in phases.items()}
    for name, st in stats.items():
        print(
            f"{name:<34} {st['ticks']:>6d} {st['max_ms']:>8.1f} {st['p95_ms']:>8.1f} "
            f"{st['mean_ms']:>8.1f}"
        )
    first_image_s = {
        label(n): (first_shown[n] - run_at) / 1000 for n in methods if n in first_shown
    }
    shown = [f"{name} {sec:.2f} s" for name, sec in first_image_s.items()]
    if maps_took:
        shown.insert(0, f"coil maps took {maps_took[0]}")
    if "prepared" in marks:
        shown.insert(0, f"problem prepared {(marks['prepared'] - run_at) / 1000:.2f} s")
    print("after Run: " + ", ".join(shown) + " (first image of each method on screen)")
    st = stats["whole run"]
    verdict = "PASS" if st["max_ms"] < TARGET_MS else "FAIL"
    print(
        f"UI event-loop lateness during the run (10 ms timer): max {st['max_ms']:.1f} ms, "
        f"p95 {st['p95_ms']:.1f} ms -> {verdict} (target max < {TARGET_MS:.0f} ms)"
    )
    if playback is not None:
        playback["lateness"] = stats[play_row]
        print(_playback_line(playback))
    if getattr(args, "json", None):
        results = {
            "file": window.volume.path.name,
            "cine": cine,
            "shape": dict(zip(("frames", "coils", "height", "width"), shape, strict=True))
            if cine
            else dict(zip(("coils", "height", "width"), shape, strict=True)),
            "methods": {label(n): {"iterations": t.iterations[-1]} for n, t in traces.items()},
            "wall_s": wall,
            "device": args.device,
            "window": [width, height],
            "error_maps": bool(getattr(args, "errors", False)),
            "load_average": load,
            "phases": stats,
            "first_image_s": first_image_s,
            "playback": playback,
            "target_max_ms": TARGET_MS,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2, default=float)
    return 0


def _playback(app, window, clock, fps: float, seconds: float) -> dict:
    """Cine: press Play on the frame bar at ``fps`` for ``seconds`` (the app's play timer steps
    the frame; every pane shows it), then move the frame slider over every frame and time each
    move until every pane (and error map) has repainted. Returns the figures and ``_span``, the
    playback's (start, end) on ``clock`` in ms."""
    from PyQt6.QtCore import QEvent, QEventLoop, QObject, QTimer

    bar = window.cine_bar
    bar.fps_spin.setValue(fps)
    fps = bar.fps_spin.value()
    shown: list[float] = []  # clock ms after each frame step (set_frame done)
    set_frame = window.set_frame

    def recording_set_frame(frame: int) -> None:  # the play timer's path: step_frame
        set_frame(frame)
        shown.append(float(clock.elapsed()))

    window.set_frame = recording_set_frame
    app.processEvents()
    t0 = float(clock.elapsed())
    bar.play_button.click()  # the Play button: playToggled -> set_playing(True)
    loop = QEventLoop()
    QTimer.singleShot(int(round(seconds * 1000)), loop.quit)
    loop.exec()
    bar.play_button.click()  # Pause
    t1 = float(clock.elapsed())
    del window.set_frame  # the class's method again
    frames = len(shown)
    out = {
        "fps_requested": fps,
        "timer_interval_ms": window.play_timer.interval(),
        "seconds": (t1 - t0) / 1000,
        "frames_shown": frames,
        "fps_achieved": frames / max((t1 - t0) / 1000, 1e-9),
        "_span": (t0, t1),
    }
    gaps = np.diff([t0, *shown])
    out["frame_interval_max_ms"] = float(gaps.max()) if gaps.size else 0.0

    # frame slider -> every pane repainted with the new frame
    painted: dict[int, float] = {}

    class PaintSpy(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint:
                painted[id(obj)] = time.perf_counter()
            return False

    spy = PaintSpy()
    viewports = [
        w.viewport() for pane in window.grid.panes.values() for w in pane.widgets() if w.isVisible()
    ]
    for vp in viewports:
        vp.installEventFilter(spy)
    slider = bar.slider
    total, set_frame_ms, missed = [], [], 0
    frame_total = window.session.frames
    app.processEvents()
    for _ in range(frame_total):
        painted.clear()
        target = (slider.value() + 1) % frame_total
        a = time.perf_counter()
        slider.setValue(target)  # valueChanged -> frameChanged -> set_frame
        b = time.perf_counter()
        while len(painted) < len(viewports) and time.perf_counter() - a < 1.0:
            app.processEvents()
        if len(painted) < len(viewports):
            missed += 1
            continue
        set_frame_ms.append((b - a) * 1000)
        total.append((max(painted.values()) - a) * 1000)
    for vp in viewports:
        vp.removeEventFilter(spy)
    out["slider"] = {
        "moves": frame_total,
        "panes": len(viewports),
        "repainted": len(total),
        "median_ms": float(np.median(total)) if total else None,
        "max_ms": float(np.max(total)) if total else None,
        "set_frame_median_ms": float(np.median(set_frame_ms)) if set_frame_ms else None,
    }
    return out


def _playback_line(pb: dict) -> str:
    st, sl = pb["lateness"], pb["slider"]
    line = (
        f"cine playback: {pb['frames_shown']} frames in {pb['seconds']:.2f} s = "
        f"{pb['fps_achieved']:.1f} frames/s shown of {pb['fps_requested']:g} requested "
        f"(play timer {pb['timer_interval_ms']} ms, longest gap "
        f"{pb['frame_interval_max_ms']:.0f} ms); lateness max {st['max_ms']:.1f} ms, "
        f"p95 {st['p95_ms']:.1f} ms, mean {st['mean_ms']:.1f} ms"
    )
    if sl["median_ms"] is not None:
        line += (
            f"\nframe slider -> {sl['panes']} panes repainted: median {sl['median_ms']:.1f} ms, "
            f"max {sl['max_ms']:.1f} ms over {sl['repainted']} moves "
            f"(set_frame median {sl['set_frame_median_ms']:.1f} ms)"
        )
    else:
        line += "\nframe slider -> panes repainted: not measured (no paint seen)"
    return line


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
