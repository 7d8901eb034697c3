"""The main window: layout and wiring. The data, mask and methods panels sit around the
comparison grid, the iteration slider, the curves and the metrics table.

The state of the comparison (file, slice, mask, runs, convention, provenance, exports) is a
Qt-free :class:`mriviewer.core.session.ComparisonSession`; the presenters are mixins by concern
(:mod:`display`, :mod:`mask_ui`, :mod:`exports`); all heavy work runs in :mod:`workers`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PyQt6.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mriviewer import __version__
from mriviewer.core.session import REFERENCE, ComparisonSession
from mriviewer.gui.cine_ui import CineMixin
from mriviewer.gui.display import DisplayMixin
from mriviewer.gui.exports import ExportMixin
from mriviewer.gui.files_ui import FilesMixin
from mriviewer.gui.mask_ui import MaskMixin
from mriviewer.gui.methods_ui import MethodsMixin
from mriviewer.gui.widgets.grid import DISPLAY_MODES, ComparisonGrid
from mriviewer.gui.widgets.panels import (
    CurvesWidget,
    DataPanel,
    MaskPanel,
    MethodsPanel,
    MetricsTable,
    method_color,
)
from mriviewer.gui.widgets.system_report import show_system_report
from mriviewer.gui.workers import (
    IterationPayload,
    RunController,
    default_backend,
    warm_up_compute_server,
)

REFRESH_MS = 100  # streamed results are applied at most this often (ms)
CURVES_DELAY_MS = 40  # the curves follow the panes this much later (ms)

SHORTCUTS = [
    ("Ctrl+O", "open a k-space file"),
    ("Ctrl+R", "run the checked methods"),
    ("Esc", "cancel the run"),
    ("Ctrl+E", "export the figure (PNG/SVG/PDF + JSON sidecar)"),
    ("Ctrl+S", "save the session"),
    ("Left / Right", "previous / next iteration"),
    ("Up / Down", "next / previous slice"),
    (", .  k", "cine: previous / next frame, play / pause"),
    ("m p r i l", "magnitude, phase, real, imaginary, log magnitude"),
    ("[ ]", "brightness down / up"),
    ("{ }", "contrast down / up"),
    ("e", "toggle error maps"),
    ("Ctrl+0", "fit the images (reset zoom)"),
    ("Ctrl+Shift+R", "reset window/level to the reference 1st-99th percentile"),
]


def settings_store() -> QSettings:
    """App settings (recent files); ``MRIVIEWER_CONFIG_DIR`` redirects them (tests)."""
    config_dir = os.environ.get("MRIVIEWER_CONFIG_DIR")
    if config_dir:
        Path(config_dir).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(config_dir) / "mriviewer.ini"), QSettings.Format.IniFormat)
    return QSettings("mriviewer", "mriviewer")


def available_devices() -> list[str]:
    """``cpu`` and every visible CUDA device."""
    devices = ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken CUDA setup still leaves the CPU
        pass
    return devices


def _combo(name: str, items: dict[str, str], tooltip: str) -> QComboBox:
    """A combo box named ``name`` with ``label -> data`` items and a tooltip."""
    combo = QComboBox()
    combo.setObjectName(name)
    for label, data in items.items():
        combo.addItem(label, data)
    combo.setToolTip(tooltip)
    return combo


class MainWindow(
    CineMixin, FilesMixin, MethodsMixin, DisplayMixin, MaskMixin, ExportMixin, QMainWindow
):
    """The app's window: layout and wiring (public methods are what menus, shortcuts, scripts
    and tests call)."""

    runFinished = pyqtSignal(bool)  # cancelled?
    errorShown = pyqtSignal(str)

    def __init__(self, scripted: bool = False) -> None:
        super().__init__()
        self.scripted = scripted
        self.setWindowTitle(f"mriviewer {__version__}")
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.settings = settings_store()
        self.controller = RunController(self)
        # the comparison's state; the window presents it (see the SESSION_* forwards below)
        self.session = ComparisonSession()
        self.zoo_keys: dict[str, str] = {}  # zoo model name -> method key
        self.display_mode = "magnitude"
        self.errors: list[str] = []
        # modules imported before each run (in the compute process too); they may register
        # extra methods with mriviewer.core.compare.register_method
        self.plugin_modules: list[str] = []
        self._pending_layout: list[str] | None = None
        self.read_probe = None  # ReadProbe: HDF5 files are read in a helper process first
        self._shown: dict[str, tuple] = {}
        self._curve_counts: dict[str, int] = {}
        self._follow = True
        self._build_ui()
        self._build_menus()
        self.populate_methods()
        self.methods_panel.list.itemChanged.connect(self._keep_spare_panes)
        self._keep_spare_panes()
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self._refresh_streamed)
        # while results stream in, the curves are redrawn in their own event-loop turn, a little
        # after the panes, so no single repaint holds the UI thread for both
        self.curves_timer = QTimer(self)
        self.curves_timer.setSingleShot(True)
        self.curves_timer.setInterval(CURVES_DELAY_MS)
        self.curves_timer.timeout.connect(self._refresh_curves)
        # a run's panes are laid out by a timer (not a posted call), so the paint that follows
        # is a separate event-loop pass in which other timers and input get their turn
        self.layout_timer = QTimer(self)
        self.layout_timer.setSingleShot(True)
        self.layout_timer.setInterval(1)
        self.layout_timer.timeout.connect(self._lay_out_run)
        if default_backend() == "process":
            QTimer.singleShot(0, warm_up_compute_server)  # start it early (it imports torch)

    def _build_ui(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        self.grid = ComparisonGrid()
        layout.addWidget(self.grid, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Iteration"))
        self.iter_slider = QSlider(Qt.Orientation.Horizontal)
        self.iter_slider.setObjectName("iterationSlider")
        self.iter_slider.setRange(0, 0)
        self.iter_slider.valueChanged.connect(self._iteration_changed)
        row.addWidget(self.iter_slider, 1)
        self.iter_label = QLabel("0 / 0")
        self.iter_label.setObjectName("iterationLabel")
        self.iter_label.setMinimumWidth(70)
        row.addWidget(self.iter_label)
        layout.addLayout(row)
        self._build_cine_bar(layout)  # frame slider, play/pause, fps (cine mode only)
        self.metrics_note = QLabel("")
        self.metrics_note.setObjectName("metricsNote")
        self.metrics_note.setWordWrap(True)
        self.metrics_note.setMinimumWidth(100)
        note_row = QHBoxLayout()
        note_row.addWidget(self.metrics_note, 1)
        self.reference_combo = _combo(
            "referenceKind",
            {"vs RSS": "rss", "vs SENSE": "sense"},
            "what PSNR/SSIM/NMSE are measured against: the RSS of the fully sampled data "
            "(fastMRI) or its SENSE combination with ESPIRiT maps of the fully sampled data",
        )
        self.region_combo = _combo(
            "metricsRegion",
            {"all": "all", "foreground": "foreground"},
            "pixels the metrics cover: all, or the reference's foreground (10% of its 99th "
            "percentile, holes filled), the same for every method",
        )
        note_row.addWidget(self.reference_combo)
        note_row.addWidget(self.region_combo)
        layout.addLayout(note_row)
        self.setCentralWidget(central)

        self.data_panel = DataPanel()
        self.mask_panel = MaskPanel()
        self.methods_panel = MethodsPanel()
        self.curves = CurvesWidget()
        self.table = MetricsTable()
        self.kspace_view = self.data_panel.kspace_view
        docks = {}
        for name, title, widget, area in (
            ("data", "Data", self.data_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("mask", "Mask", self.mask_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("methods", "Methods", self.methods_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            ("curves", "Curves", self.curves, Qt.DockWidgetArea.BottomDockWidgetArea),
            ("metrics", "Metrics", self.table, Qt.DockWidgetArea.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"{name}Dock")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            docks[name] = dock
        self.splitDockWidget(docks["curves"], docks["metrics"], Qt.Orientation.Horizontal)
        self.resizeDocks([docks["curves"], docks["metrics"]], [3, 2], Qt.Orientation.Horizontal)
        self.resizeDocks([docks["data"], docks["methods"]], [340, 260], Qt.Orientation.Horizontal)
        self.docks = docks
        self._build_cine_dock()  # PSNR per frame and x-t profiles (cine mode only)
        self.error_label = QLabel("")
        self.error_label.setObjectName("errorLabel")
        self.error_label.setStyleSheet("color: #e05050;")
        self.statusBar().addPermanentWidget(self.error_label)

        self.data_panel.open_button.clicked.connect(self.open_file_dialog)
        self.data_panel.sliceChanged.connect(self.load_slice)
        self.data_panel.coilChanged.connect(self._update_kspace_view)
        self.data_panel.encodingChanged.connect(self.reopen_with_encoding)
        self.mask_panel.specChanged.connect(self.regenerate_mask)
        self.mask_panel.edit_combo.currentIndexChanged.connect(
            lambda _i: self.kspace_view.set_edit_mode(self.mask_panel.edit_combo.currentData())
        )
        self.mask_panel.save_button.clicked.connect(self.save_mask_dialog)
        self.mask_panel.load_button.clicked.connect(self.load_mask_dialog)
        self.kspace_view.sigEdit.connect(self.edit_mask)
        self.kspace_view.sigAcsChanged.connect(self.set_acs_band)
        self.methods_panel.run_button.clicked.connect(self.run)
        self.methods_panel.cancel_button.clicked.connect(self.cancel)
        self.methods_panel.open_model_button.clicked.connect(self.open_model_dialog)
        for dev in available_devices():
            self.methods_panel.device_combo.addItem(dev)
        self.grid.levelsChanged.connect(lambda *_: self._update_note())
        self.reference_combo.currentIndexChanged.connect(lambda _i: self._metrics_setting_changed())
        self.region_combo.currentIndexChanged.connect(lambda _i: self._metrics_setting_changed())
        self.grid.roiChanged.connect(self._update_table)

    def _action(
        self,
        menu,
        text: str,
        slot,
        shortcut: str | QKeySequence | None = None,
        checkable: bool = False,
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        self._action(m, "&Open k-space…", self.open_file_dialog, QKeySequence.StandardKey.Open)
        self._action(m, "Open &demo case", lambda: self.open_file("demo"))
        self._action(m, "Open demo &cine series", lambda: self.open_file("demo-cine"))
        self.recent_menu = m.addMenu("Open &recent")
        self._action(m, "Open &model…", self.open_model_dialog)
        m.addSeparator()
        self._action(m, "Load mask…", self.load_mask_dialog)
        self._action(m, "Save mask…", self.save_mask_dialog)
        m.addSeparator()
        self._action(m, "Open session…", self.open_session_dialog)
        self._action(m, "&Save session…", self.save_session_dialog, QKeySequence.StandardKey.Save)
        m.addSeparator()
        self._action(m, "&Export figure…", self.export_figure_dialog, "Ctrl+E")
        self._action(m, "Export metrics (CSV/JSON)…", self.export_metrics_dialog)
        self._action(m, "Export reconstructions (.npy/.h5/DICOM/NIfTI)…", self.export_recons_dialog)
        self._action(m, "Export &animation, GIF/MP4 (cine)…", self.export_animation_dialog)
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self._update_recent_menu()

        r = bar.addMenu("&Run")
        self._action(r, "&Run checked methods", self.run, "Ctrl+R")
        self._action(r, "&Cancel", self.cancel, "Esc")

        v = bar.addMenu("&View")
        self.mode_actions = {}
        for mode, key in zip(DISPLAY_MODES, "mpril", strict=True):
            act = self._action(
                v,
                mode.capitalize() if mode != "log" else "Log magnitude",
                lambda _c=False, m_=mode: self.set_display_mode(m_),
                key,
                True,
            )
            self.mode_actions[mode] = act
        self.mode_actions["magnitude"].setChecked(True)
        v.addSeparator()
        self.error_action = self._action(
            v, "Error maps", lambda c: self.set_error_maps(c), "e", True
        )
        self.roi_action = self._action(v, "ROI (mirrored)", lambda c: self.set_roi(c), None, True)
        v.addSeparator()
        self._action(v, "Brightness down", lambda: self.adjust_levels(brightness=-1), "[")
        self._action(v, "Brightness up", lambda: self.adjust_levels(brightness=+1), "]")
        self._action(v, "Contrast down", lambda: self.adjust_levels(contrast=-1), "{")
        self._action(v, "Contrast up", lambda: self.adjust_levels(contrast=+1), "}")
        self._action(v, "Reset window/level", self.reset_levels, "Ctrl+Shift+R")
        self._action(v, "Fit images (reset zoom)", self.grid.reset_view, "Ctrl+0")
        v.addSeparator()
        self._action(v, "Previous iteration", lambda: self.step_iteration(-1), "Left")
        self._action(v, "Next iteration", lambda: self.step_iteration(+1), "Right")
        self._action(v, "Next slice", lambda: self.step_slice(+1), "Up")
        self._action(v, "Previous slice", lambda: self.step_slice(-1), "Down")
        self._action(v, "Previous frame (cine)", lambda: self.step_frame(-1), ",")
        self._action(v, "Next frame (cine)", lambda: self.step_frame(+1), ".")
        self._action(
            v,
            "Play / pause (cine)",
            lambda: self.set_playing(not self.play_timer.isActive()),
            "k",
        )
        v.addSeparator()
        for dock in self.docks.values():
            v.addAction(dock.toggleViewAction())

        h = bar.addMenu("&Help")
        self._action(h, "Keyboard &shortcuts", self.show_shortcuts)
        self._action(h, "System &report…", lambda: show_system_report(self))
        self._action(h, "&About", self.show_about)

    def show_error(self, title: str, text: str) -> None:
        """Tell the user (status bar + non-blocking dialog); the app keeps running."""
        self.errors.append(text)
        self.error_label.setText(text if len(text) < 160 else text[:157] + "…")
        self.statusBar().showMessage(f"{title}: {text}", 15000)
        self.errorShown.emit(text)
        if self.scripted:
            print(f"mriviewer: {title}: {text}", file=sys.stderr)
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self
        )
        box.setObjectName("errorDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_shortcuts(self) -> QDialog:
        dialog = QDialog(self)
        dialog.setObjectName("shortcutsDialog")
        dialog.setWindowTitle("Keyboard shortcuts")
        layout = QVBoxLayout(dialog)
        table = QTableWidget(len(SHORTCUTS), 2)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().setVisible(False)
        for r, (keys, what) in enumerate(SHORTCUTS):
            table.setItem(r, 0, QTableWidgetItem(keys))
            table.setItem(r, 1, QTableWidgetItem(what))
        table.resizeColumnsToContents()
        layout.addWidget(table)
        dialog.resize(460, 420)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About mriviewer",
            f"mriviewer {__version__}\nAccelerated MRI reconstruction explorer.",
        )

    def run(
        self, methods: list[str] | None = None, settings: dict[str, dict] | None = None
    ) -> bool:
        """Run the checked methods (or ``methods``, with optional per-method ``settings``)
        on the current slice in the worker thread."""
        if self.controller.running:
            self.statusBar().showMessage("a run is in progress (Esc cancels it)", 4000)
            return False
        if self.kspace is None or self.mask is None:
            self.show_error("Nothing to run", "open a k-space file first")
            return False
        methods = list(methods) if methods else self.methods_panel.checked()
        if not methods:
            self.show_error("Nothing to run", "check at least one method in the Methods panel")
            return False
        unavailable = self.unavailable_methods(methods)
        if unavailable:
            self.show_error("Cannot run", "; ".join(unavailable.values()))
            return False
        self._sync_metric_choices()
        request = self.session.run_request(
            methods,
            device=self.methods_panel.device_combo.currentText() or "cpu",
            settings=settings,
            imports=self.plugin_modules,
        )
        self.session.begin_run(
            methods,
            {key: self.methods_panel.label(key) for key in methods},
            {key: method_color(i) for i, key in enumerate(methods)},
        )
        self.curves.clear_curves()
        self._curve_counts.clear()
        self._pending_layout = [REFERENCE, *methods]
        self._follow = True
        self.iter_slider.setRange(0, 0)
        worker = self.controller.start(request)
        worker.status.connect(self.methods_panel.progress.setText)
        worker.prepared.connect(self._on_prepared)
        worker.method_started.connect(self._on_method_started)
        worker.iteration.connect(self._on_iteration)
        worker.method_finished.connect(self._on_method_finished)
        worker.method_failed.connect(self._on_method_failed)
        worker.failed.connect(lambda text: self.show_error("Run failed", text))
        worker.finished.connect(self._on_run_finished)
        self.methods_panel.set_running(True)
        # the panes are laid out in the next event-loop turn (the worker is already estimating
        # coil maps), so the Run click and the new layout do not hold the UI in one go
        self.layout_timer.start()
        return True

    def cancel(self) -> None:
        if self.controller.running:
            self.controller.cancel()
            self.methods_panel.progress.setText("cancelling…")

    def _on_prepared(self, info: dict) -> None:
        """The core's reference (the convention's image the metrics use) and its warnings."""
        self.session.apply(("prepared", info))
        self._shown.pop(REFERENCE, None)
        if self.run_warnings:
            self.error_label.setText("; ".join(self.run_warnings)[:200])
            self.statusBar().showMessage(self.run_warnings[0], 10000)

    def _sync_metric_choices(self) -> None:
        self.session.reference_choice = self.reference_combo.currentData()
        self.session.metrics_region = self.region_combo.currentData()

    def _metrics_setting_changed(self) -> None:
        """A new reference convention or metric region: the shown comparison is run again (coil
        maps are cached), so no figure mixes conventions."""
        self._sync_metric_choices()
        if not self.ground_truth or not self.traces or self.controller.running:
            return
        if self.session.reference_choice == "rss":
            self.session.reload_reference()  # back to the file's (or the RSS) reference
        self.run(list(self.run_methods))

    def _on_method_started(self, name: str, info: dict) -> None:
        expected = info.get("expected_iterations")
        if name in self.traces and isinstance(expected, int):
            self.curves.expect_iterations(expected)

    def _on_iteration(self, payload: IterationPayload) -> None:
        if payload.method in self.traces:
            self.session.apply(("iteration", payload))
            if not self.refresh_timer.isActive():
                self.refresh_timer.start()

    def _on_method_finished(self, name: str, summary: dict) -> None:
        self.session.apply(("method_finished", name, summary))

    def _on_method_failed(self, name: str, reason: str) -> None:
        self.session.apply(("method_failed", name, reason))
        where = name[len("model:") :] if name.startswith("model:") else name
        self.show_error("Method failed", f"{where}: {reason}")

    def _on_run_finished(self, cancelled: bool) -> None:
        self.methods_panel.set_running(False)
        done = [t.label for t in self.traces.values() if t.complete]
        self.methods_panel.progress.setText(
            ("cancelled" if cancelled else "finished")
            + f" ({len(done)}/{len(self.traces)} complete)"
        )
        if cancelled:
            self.statusBar().showMessage("run cancelled; results so far are kept", 6000)
        self.refresh_timer.stop()
        self.curves_timer.stop()
        self.refresh()
        self.runFinished.emit(cancelled)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not getattr(self, "_docks_sized", False):
            self._docks_sized = True
            height = max(200, int(self.height() * 0.27))
            self.resizeDocks([self.docks["curves"]], [height], Qt.Orientation.Vertical)
            QTimer.singleShot(0, self.grid.reset_view)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        """Stop the worker (cancel + wait) before the window goes."""
        self.refresh_timer.stop()
        if self.read_probe is not None:
            self.read_probe.close()
        # a compute process that has not stopped after 3 s is terminated by stop(); a thread
        # backend can only be waited for
        ended = self.controller.stop(wait_ms=3000) or self.controller.stop(wait_ms=60000)
        if not ended:
            self.statusBar().showMessage("still stopping the run; try closing again", 5000)
            event.ignore()
            return
        event.accept()


#: session state the window exposes as its own attributes (read and write)
SESSION_FIELDS = (
    "volume",
    "kspace",
    "reference",
    "sampling",
    "ground_truth",
    "mask",
    "mask_file",
    "traces",
    "run_methods",
    "run_warnings",
    "model_cards",
    "model_files",
    "reference_kind",
)
#: session methods the window offers as its own (scripts and tests call them on the window)
SESSION_METHODS = (
    "measures",
    "metrics_text",
    "reference_title",
    "reference_description",
    "mask_description",
    "effective_mask",
    "data_mask",
    "acquired_band",
    "acs_band",
    "max_iteration",
)


def _forward(name: str) -> property:
    return property(
        lambda self: getattr(self.session, name),
        lambda self, value: setattr(self.session, name, value),
    )


for _name in SESSION_FIELDS:
    setattr(MainWindow, _name, _forward(_name))
for _name in SESSION_METHODS:
    setattr(MainWindow, _name, property(lambda self, n=_name: getattr(self.session, n)))
