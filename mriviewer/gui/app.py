"""``mriviewer [FILE|--demo] [--run METHODS ... --screenshot OUT.png --export-figure OUT.pdf --exit]``

Opens the main window. With ``--run`` the methods run through the same worker a click uses;
``--screenshot`` / ``--export-figure`` / ``--export-metrics`` are written when the run ends and
``--exit`` then quits (exit status 0, or 1 with a message if anything failed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mriviewer import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mriviewer",
        description="Open the mriviewer desktop app (the headless subcommands are listed by mriviewer --help).",
    )
    p.add_argument("file", nargs="?", help="k-space file to open (default: the demo case)")
    p.add_argument("--demo", action="store_true", help="open the embedded demo case")
    p.add_argument("--session", help="restore a saved session JSON")
    p.add_argument("--slice", type=int, default=None, help="slice index (default: middle)")
    p.add_argument(
        "--encoding", type=int, default=None, help="encoding space of an MRD file (default 0)"
    )
    p.add_argument(
        "--no-prewhiten",
        dest="prewhiten",
        action="store_false",
        help="do not prewhiten with the file's noise data",
    )
    p.add_argument(
        "--run",
        default=None,
        help="comma-separated methods to run (e.g. zero-filled,cg-sense,model:NAME)",
    )
    p.add_argument("--accel", type=float, default=None, help="acceleration R of the mask")
    p.add_argument(
        "--mask",
        default=None,
        choices=["random", "equispaced", "poisson", "gaussian", "data"],
        help="mask type (data: the file's own sampling, the default for undersampled files; "
        "another type on an undersampled file is applied on top of its sampling)",
    )
    p.add_argument(
        "--reference",
        default=None,
        choices=["rss", "sense"],
        help="metric reference convention: rss (fastMRI, default) or sense (MoDL/GLEAM/PUN)",
    )
    p.add_argument(
        "--metrics-region",
        default=None,
        choices=["all", "foreground"],
        help="pixels the metrics cover (default all)",
    )
    p.add_argument("--mask-file", default=None, help="load a .npy mask instead")
    p.add_argument("--center-fraction", type=float, default=None, help="centre fraction (1-D)")
    p.add_argument("--calib", type=int, default=None, help="calibration size (2-D masks)")
    p.add_argument("--seed", type=int, default=None, help="mask seed")
    p.add_argument("--device", default=None, help="cpu or cuda:N")
    p.add_argument("--display", default=None, choices=["magnitude", "phase", "real", "imag", "log"])
    p.add_argument("--error-maps", action="store_true", help="show error maps")
    p.add_argument("--iteration", type=int, default=None, help="iteration to show after the run")
    p.add_argument("--frame", type=int, default=None, help="cine: frame to show after the run")
    p.add_argument(
        "--export-gif",
        default=None,
        help="cine: save the comparison as an animated GIF, or an MP4 with a .mp4 name",
    )
    p.add_argument("--screenshot", default=None, help="save a PNG of the window after the run")
    p.add_argument("--export-figure", default=None, help="save the figure (.png/.svg/.pdf)")
    p.add_argument("--export-metrics", default=None, help="save metrics (.csv/.json)")
    p.add_argument("--size", default="1600x1000", help="window size WxH (default 1600x1000)")
    p.add_argument("--exit", action="store_true", help="quit after the scripted steps")
    p.add_argument("--version", action="version", version=f"mriviewer {__version__}")
    return p


def _set_icon(app) -> None:
    from PyQt6.QtGui import QIcon

    from mriviewer.core.resources import resource_path

    svg = Path(__file__).resolve().parents[2] / "resources" / "icons" / "mriviewer.svg"
    candidates = [
        resource_path("icons/mriviewer.svg"),
        svg,
        resource_path("icons/mriviewer-256.png"),
    ]
    for path in candidates:
        if path.is_file():
            app.setWindowIcon(QIcon(str(path)))
            return


class ScriptRunner:
    """Drives the window for ``--run/--screenshot/--export-figure/--exit``."""

    def __init__(self, app, window, args: argparse.Namespace) -> None:
        self.app, self.window, self.args = app, window, args
        self.status = 0

    def fail(self, message: str) -> None:
        print(f"mriviewer: error: {message}", file=sys.stderr)
        self.status = 1

    def start(self) -> None:
        args, w = self.args, self.window
        if w.kspace is None:
            self.fail("no case is open")
            return self.finish()
        if args.mask_file:
            if not w.load_mask(args.mask_file):
                self.fail(f"cannot load mask {args.mask_file}")
                return self.finish()
        if args.display:
            w.set_display_mode(args.display)
        if args.error_maps:
            w.set_error_maps(True)
        if args.run:
            methods = [m.strip() for m in args.run.split(",") if m.strip()]
            for m in list(methods):
                if m.startswith("model:") and m not in w.methods_panel.keys():
                    target = m[len("model:") :]
                    if target in w.zoo_keys:
                        methods[methods.index(m)] = w.zoo_keys[target]
                    elif Path(target).is_file():
                        if not w.open_model(target):
                            self.fail(f"cannot open model {target}")
                            return self.finish()
                        methods[methods.index(m)] = f"model:{Path(target).resolve()}"
                    else:
                        w.methods_panel.add_method(m, m, "")
            known = set(w.methods_panel.keys())
            unknown = [m for m in methods if m not in known]
            if unknown:
                self.fail(
                    f"unknown method(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
                return self.finish()
            unavailable = w.unavailable_methods(methods)
            if unavailable:
                self.fail("; ".join(unavailable.values()))
                return self.finish()
            w.methods_panel.set_checked(methods)
            w.runFinished.connect(self.after_run)
            if not w.run(methods):
                self.fail("the run could not start")
                return self.finish()
        else:
            self.after_run(False)

    def after_run(self, cancelled: bool) -> None:
        args, w = self.args, self.window
        if cancelled:
            self.fail("the run was cancelled")
        failed = [t.label + ": " + t.error for t in w.traces.values() if t.error]
        if failed:
            self.fail("; ".join(failed))
        if args.iteration is not None:
            w.iter_slider.setValue(args.iteration)
        if args.frame is not None:
            frames = w.session.frames if getattr(w.session, "is_cine", False) else 0
            if not 0 <= args.frame < frames:
                have = f"frames 0-{frames - 1}" if frames else "no frames (not a cine series)"
                self.fail(f"--frame {args.frame} is out of range: the series has {have}")
                return self.finish()
            w.set_frame(args.frame)
        self.app.processEvents()
        if args.screenshot:
            w.repaint()
            self.app.processEvents()
            pixmap = w.grab()
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            if not pixmap.save(str(args.screenshot)):
                self.fail(f"cannot write screenshot {args.screenshot}")
            else:
                print(f"screenshot: {args.screenshot}")
        if args.export_figure:
            if w.export_figure(args.export_figure):
                print(f"figure: {args.export_figure}")
            else:
                self.fail(f"cannot export figure {args.export_figure}")
        if args.export_gif:
            if w.export_animation(args.export_gif):
                print(f"animation: {args.export_gif}")
            else:
                self.fail(f"cannot export animation {args.export_gif}")
        if args.export_metrics:
            if w.export_metrics(args.export_metrics):
                print(f"metrics: {args.export_metrics}")
            else:
                self.fail(f"cannot export metrics {args.export_metrics}")
        if w.traces:
            print(w.reference_description())
            print(f"mask: {w.mask_description()}")
        for warning in w.run_warnings:
            print(f"warning: {warning}")
        nan = float("nan")
        for trace in w.traces.values():
            if trace.metrics:
                m = trace.metrics[-1]
                if w.ground_truth:
                    measures = f"PSNR {m.get('psnr', nan):6.2f} dB  SSIM {m.get('ssim', nan):.4f}"
                else:
                    measures = w.metrics_text(m).replace(" · ", "  ")
                name = trace.label if trace.key.startswith("model:") else trace.key
                print(
                    f"{name:24s} it {trace.iterations[-1]:3d}  {measures}  "
                    f"{trace.elapsed[-1]:.2f} s"
                )
        self.finish()

    def finish(self) -> None:
        if self.args.exit:
            self.window.close()
            self.app.exit(self.status)


def configure_pyqtgraph() -> None:
    """pyqtgraph options of the app (row-major images, antialiased curves); the UI benchmark
    uses the same so it measures what the user gets."""
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


def run_app(argv: Sequence[str] | None = None) -> int:
    """Open the main window (``argv`` excludes the program name); returns the exit status."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from mriviewer.gui.platform_check import import_error_message, platform_problem

    widgets = sys.modules.get("PyQt6.QtWidgets")
    if widgets is None or widgets.QApplication.instance() is None:
        problem = platform_problem()  # missing Qt system libraries / no display: say so
        if problem:
            print(problem, file=sys.stderr)
            return 1
    try:
        from PyQt6.QtCore import QTimer
        from PyQt6.QtGui import QGuiApplication
        from PyQt6.QtWidgets import QApplication
    except ImportError as exc:
        print(import_error_message(exc), file=sys.stderr)
        return 1
    configure_pyqtgraph()
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "mriviewer"])
    app.setApplicationName("mriviewer")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("mriviewer")
    QGuiApplication.setDesktopFileName("mriviewer")
    _set_icon(app)

    from mriviewer.gui.main_window import MainWindow

    scripted = bool(args.exit)
    window = MainWindow(scripted=scripted)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(
            f"mriviewer: error: --size must look like 1600x1000, got {args.size!r}", file=sys.stderr
        )
        return 2
    window.resize(width, height)
    _apply_mask_args(window, args)
    if args.device:
        idx = window.methods_panel.device_combo.findText(args.device)
        if idx < 0:
            print(
                f"mriviewer: error: device {args.device!r} not available "
                f"(have: {', '.join(window.methods_panel.device_combo.itemText(i) for i in range(window.methods_panel.device_combo.count()))})",
                file=sys.stderr,
            )
            return 1
        window.methods_panel.device_combo.setCurrentIndex(idx)
    opened = True
    if args.session:
        opened = window.restore_session(args.session)
    else:
        target = "demo" if (args.demo or not args.file) else args.file
        opened = window.open_file(target, args.slice, args.encoding, args.prewhiten)
    # asked for explicitly: also on top of an undersampled file (a cine file: also --accel)
    if opened and (args.mask or (window.session.is_cine and args.accel is not None)):
        _apply_mask_args(window, args)
        window.regenerate_mask()
    for combo, value in (
        (window.reference_combo, args.reference),
        (window.region_combo, args.metrics_region),
    ):
        if value is not None:
            combo.setCurrentIndex(combo.findData(value))
    window.show()
    if scripted and not opened:
        window.close()
        return 1
    runner = ScriptRunner(app, window, args)
    if (
        args.run
        or args.screenshot
        or args.export_figure
        or args.export_metrics
        or args.export_gif
        or args.exit
    ):
        QTimer.singleShot(0, runner.start)
    previous = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(True)  # closing the window ends the app
    try:
        status = app.exec()
    finally:
        app.setQuitOnLastWindowClosed(previous)
    return int(runner.status or status)


def _apply_mask_args(window, args: argparse.Namespace) -> None:
    panel = window.mask_panel
    spec = {
        "kind": args.mask or panel.kind(),
        "acceleration": args.accel if args.accel is not None else panel.accel_spin.value(),
        "center_fraction": (
            args.center_fraction if args.center_fraction is not None else panel.cf_spin.value()
        ),
        "calib": args.calib if args.calib is not None else panel.calib_spin.value(),
        "seed": args.seed if args.seed is not None else panel.seed_spin.value(),
    }
    panel.set_spec_values(spec)
