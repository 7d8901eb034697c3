"""The main window: data, mask and methods panels around the comparison grid, the iteration
slider, PSNR/SSIM curves and the metrics table. All heavy work runs in :mod:`workers`."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDockWidget,
    QFileDialog,
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
from mriviewer.core.errors import MriViewerError
from mriviewer.gui.session import SessionState, load_session, mask_file_for, save_session
from mriviewer.gui.widgets.grid import (
    DISPLAY_MODES,
    ERROR_CMAP,
    IMAGE_CMAP,
    ComparisonGrid,
    default_levels,
    display_array,
    error_array,
)
from mriviewer.gui.widgets.kspace_view import log_magnitude
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
    RunRequest,
    default_backend,
    warm_up_compute_server,
)

REFERENCE = "reference"
MAX_RECENT = 8
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


@dataclass
class MethodTrace:
    """Everything streamed for one method: images (original units) and metrics per iteration."""

    key: str
    label: str
    color: str
    iterations: list[int] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    peak_memory_mb: float = 0.0
    complete: bool = False
    error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def add(self, payload: IterationPayload) -> None:
        self.iterations.append(payload.iteration)
        self.images.append(payload.image)
        self.metrics.append(payload.metrics)
        self.elapsed.append(payload.elapsed)
        self.peak_memory_mb = max(self.peak_memory_mb, payload.peak_memory_mb)
        self.complete = self.complete or payload.final

    def index_at(self, iteration: int) -> int | None:
        """Index of the latest stored iteration <= ``iteration`` (None before the first)."""
        best = None
        for i, it in enumerate(self.iterations):
            if it <= iteration and (best is None or it >= self.iterations[best]):
                best = i
        return best


def _card_text(card: Any) -> str:
    if isinstance(card, str):
        return card
    try:
        return json.dumps(card, indent=2, sort_keys=True, default=str)
    except TypeError:
        return str(card)


def _card_hash(card: Any) -> str:
    import hashlib

    text = json.dumps(card, sort_keys=True, default=str) if not isinstance(card, str) else card
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _combo(name: str, items: dict[str, str], tooltip: str) -> QComboBox:
    """A combo box named ``name`` with ``label -> data`` items and a tooltip."""
    combo = QComboBox()
    combo.setObjectName(name)
    for label, data in items.items():
        combo.addItem(label, data)
    combo.setToolTip(tooltip)
    return combo


class MainWindow(QMainWindow):
    """The whole app. Public methods are what menus, shortcuts, scripts and tests call."""

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
        self.volume = None
        self.kspace: np.ndarray | None = None
        self.reference: np.ndarray | None = None
        # the data's own sampling (SamplingInfo) and whether metrics have a ground truth: a
        # prospectively undersampled slice has none (its pane shows the acquired data's RSS)
        self.sampling = None
        self.ground_truth = True
        self.reference_kind = "rss"  # the convention of the last run's metrics
        self.run_warnings: list[str] = []
        self.mask = None  # SamplingMask
        self.mask_file: str | None = None
        self.traces: dict[str, MethodTrace] = {}
        self.model_cards: dict[str, Any] = {}
        self.model_files: list[str] = []
        self.zoo_keys: dict[str, str] = {}  # zoo model name -> method key
        self.display_mode = "magnitude"
        self.errors: list[str] = []
        self.run_methods: list[str] = []
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

    # ===== UI construction ================================================================
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
        v.addSeparator()
        for dock in self.docks.values():
            v.addAction(dock.toggleViewAction())

        h = bar.addMenu("&Help")
        self._action(h, "Keyboard &shortcuts", self.show_shortcuts)
        self._action(h, "System &report…", lambda: show_system_report(self))
        self._action(h, "&About", self.show_about)

    # ===== messages =======================================================================
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

    # ===== files ==========================================================================
    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open k-space",
            str(Path.home()),
            "k-space (*.h5 *.hdf5 *.cfl *.hdr *.npy *.npz *.mat *.dat);;All files (*)",
        )
        if path:
            self.open_file(path)

    def open_file(
        self,
        path: str | Path,
        slice_index: int | None = None,
        encoding: int | None = None,
        prewhiten: bool = True,
    ) -> bool:
        """Open a k-space file (or ``"demo"``); on failure the current case stays as it was.

        ``encoding``: the encoding space of an MRD file with several (None: the reader's 0).
        ``prewhiten``: prewhiten with the file's noise data, if it has any (default)."""
        from mriviewer.core.io import open_kspace

        if not self._probe_read("Cannot open file", path, slice_index):
            return False
        try:
            options = {} if encoding is None else {"encoding": encoding}
            volume = open_kspace(path, prewhiten=prewhiten, **options)
            index = (
                volume.num_slices // 2 if slice_index is None else volume.select_index(slice_index)
            )
            kspace, reference, sampling = self._read_slice(volume, index)
        except MriViewerError as exc:
            self.show_error("Cannot open file", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - never crash on a user's file
            self.show_error("Cannot open file", f"{path}: {type(exc).__name__}: {exc}")
            return False
        self.controller.stop()
        self.volume = volume
        volume.select(index)
        self.data_panel.set_volume_info(
            volume.summary(), volume.num_slices, volume.num_coils, index
        )
        self._set_slice_data(kspace, reference, sampling)
        self.setWindowTitle(f"mriviewer {__version__} — {Path(volume.path).name}")
        if str(path) != "demo":
            self._add_recent(str(Path(path).resolve()))
        self.statusBar().showMessage(f"opened {volume.path}", 5000)
        self.error_label.setText("")
        return True

    def reopen_with_encoding(self, encoding: int) -> bool:
        """Reopen the current file with another encoding space (the data panel's selector)."""
        if self.volume is None or encoding == self.volume.header.get("encoding", 0):
            return False
        return self.open_file(self.volume.path, encoding=encoding, prewhiten=self.volume.prewhiten)

    def _probe_read(self, title: str, path: str | Path, index: int | None) -> bool:
        """Read an HDF5 file in the helper process first (see :mod:`read_probe`); False (and
        a message) if that crashed it. Other formats are read by Python code and not probed."""
        from mriviewer.gui.read_probe import ReadProbe, is_hdf5

        if str(path) == "demo" or not is_hdf5(path):
            return True
        if self.read_probe is None:
            self.read_probe = ReadProbe()
        try:
            result = self.read_probe.check(Path(path).resolve(), index)
        except (RuntimeError, OSError) as exc:  # no helper process here: read in-process
            self.statusBar().showMessage(f"reading without a helper process ({exc})", 5000)
            return True
        if result.status == "crashed":
            self.show_error(title, result.reason)
            return False
        return True  # "error": the app's own read raises the same problem, with its message

    def _read_slice(self, volume, index: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """k-space, the image shown in the reference pane and the data's own sampling.

        The image is the file's reference, else the RSS of the k-space: a reference when the
        k-space is fully sampled, only the acquired data's RSS when it is undersampled."""
        from mriviewer.core.images import center_crop
        from mriviewer.core.physics.fft import ifft2c_np, rss
        from mriviewer.core.physics.sampling import detect_sampling

        kspace = volume.read_kspace(index)
        sampling = detect_sampling(kspace)
        reference = volume.read_reference(index)
        if reference is None:
            reference = center_crop(rss(ifft2c_np(kspace)), volume.recon_matrix).astype(np.float32)
        return kspace, reference, sampling

    def load_slice(self, index: int) -> bool:
        if self.volume is None:
            return False
        if index == self.volume.slice_index and self.kspace is not None:
            return True
        if not self._probe_read("Cannot read slice", self.volume.path, index):
            self.data_panel.set_slice(self.volume.slice_index)  # back to the slice shown
            return False
        try:
            kspace, reference, sampling = self._read_slice(self.volume, index)
        except MriViewerError as exc:
            self.show_error("Cannot read slice", str(exc))
            self.data_panel.set_slice(self.volume.slice_index)
            return False
        self.controller.stop()
        self.volume.select(index)
        self.data_panel.set_slice(index)
        self._set_slice_data(kspace, reference, sampling)
        return True

    def _set_slice_data(self, kspace: np.ndarray, reference: np.ndarray, sampling: Any) -> None:
        self.kspace = kspace
        self.reference = reference
        self.sampling = sampling
        has_file_reference = self.volume is not None and self.volume.has_reference
        self.ground_truth = bool(sampling.fully_sampled or has_file_reference)
        self.reference_kind = self.reference_combo.currentData() if self.ground_truth else None
        self.run_warnings = []
        # no ground truth, no convention to choose: the selectors say so by being disabled
        self.reference_combo.setEnabled(self.ground_truth)
        self.region_combo.setEnabled(self.ground_truth)
        self.table.set_ground_truth(self.ground_truth)
        self.curves.set_ground_truth(self.ground_truth)
        self.traces = {}
        self.curves.clear_curves()
        self._curve_counts.clear()
        self.iter_slider.setRange(0, 0)
        if not sampling.fully_sampled:
            # an accelerated scan: its own sampling is the mask unless the user asks for more
            self.mask_panel.set_kind("data", emit=False)
            self.mask_file = None
            self.regenerate_mask()
        elif (
            self.mask is None
            or self.mask.shape != kspace.shape[-2:]
            or (self.mask_panel.kind() == "data")
        ):
            if self.mask_panel.kind() in ("array", "data"):
                self.mask_panel.set_kind("random", emit=False)
            self.mask_file = None
            self.regenerate_mask()
        else:
            self._mask_changed()
        self._update_kspace_view()
        self._pending_layout = None
        # the method panes go back to the grid's spares for the next run
        self.grid.keep_spare_panes(len(self.methods_panel.checked()))
        self.grid.set_panes([REFERENCE])
        self.grid.reset_view()
        self.reset_levels()
        self.refresh()

    def step_slice(self, delta: int) -> None:
        if self.volume is not None:
            index = int(np.clip(self.volume.slice_index + delta, 0, self.volume.num_slices - 1))
            self.data_panel.set_slice(index)

    def _update_kspace_view(self) -> None:
        if self.kspace is None:
            return
        self.kspace_view.set_kspace(log_magnitude(self.kspace, self.data_panel.coil()))
        self.kspace_view.set_mask(None if self.mask is None else self.mask.array)

    def _add_recent(self, path: str) -> None:
        recent = [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", [path, *recent][:MAX_RECENT])
        self.settings.sync()
        self._update_recent_menu()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_files():
            act = QAction(path, self)
            act.triggered.connect(lambda _c=False, p=path: self.open_file(p))
            self.recent_menu.addAction(act)
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not urls:
            return
        event.acceptProposedAction()
        self.open_dropped(urls[0])

    def open_dropped(self, path: str) -> bool:
        """A dropped ``.json`` is a session, a ``.safetensors`` a model, anything else k-space."""
        suffix = Path(path).suffix.lower()
        if suffix == ".json":
            return self.restore_session(path)
        if suffix == ".safetensors":
            return self.open_model(path)
        return self.open_file(path)

    # ===== mask ===========================================================================
    def mask_spec(self):
        from mriviewer.core.physics.masks import MaskSpec

        p = self.mask_panel
        return MaskSpec(
            kind=p.kind(),
            acceleration=p.accel_spin.value(),
            center_fraction=p.cf_spin.value(),
            calib=p.calib_spin.value(),
            seed=p.seed_spin.value(),
        )

    def regenerate_mask(self) -> None:
        """Draw the mask from the panel's settings (user-drawn masks are kept as they are)."""
        from mriviewer.core.physics.masks import make_mask

        if self.kspace is None or self.mask_panel.kind() == "array":
            self._mask_changed()
            return
        if self.mask_panel.kind() == "data":
            self.mask = self.data_mask()
            self.mask_file = None
            self._mask_changed()
            return
        try:
            band = self.acquired_band().columns  # zero-padded columns are never sampled
            self.mask = make_mask(self.mask_spec(), self.kspace.shape[-2:], band=band)
        except MriViewerError as exc:
            self.mask_panel.set_problem(str(exc))
            self.show_error("Cannot draw mask", str(exc))
            return
        self.mask_file = None
        self._mask_changed()

    def data_mask(self):
        """The data's own sampling as a mask (all points for fully sampled data)."""
        from mriviewer.core.physics.masks import MaskSpec, SamplingMask

        pattern = (
            self.sampling.pattern
            if self.sampling is not None
            else np.ones(self.kspace.shape[-2:], dtype=bool)
        )
        return SamplingMask(pattern.copy(), MaskSpec(kind="array", acceleration=1.0, seed=None))

    def effective_mask(self) -> np.ndarray | None:
        """The points a run uses: the mask, within the data's own sampling when undersampled."""
        if self.mask is None:
            return None
        arr = self.mask.array
        if self.sampling is not None and not self.sampling.fully_sampled:
            arr = arr & self.sampling.pattern
        return arr

    def acquired_band(self):
        """:class:`AcquiredBand` of the shown slice: zero-padded phase-encode columns (fastMRI
        knee) lie outside it; masks are drawn and R is counted inside it."""
        from mriviewer.core.physics.band import acquired_band

        cached = getattr(self, "_band_cache", None)
        if cached is None or cached[0] is not self.kspace:
            header = self.volume.header if self.volume is not None else None
            self._band_cache = (self.kspace, acquired_band(self.kspace, header))
        return self._band_cache[1]

    def _mask_changed(self) -> None:
        if self.mask is None:
            return
        arr = self.effective_mask()
        band = self.acquired_band() if self.kspace is not None else None
        inside = arr if band is None or band.is_full else arr[:, band.start : band.stop]
        sampled = int(inside.sum())
        achieved = inside.size / max(sampled, 1)
        note = "\n".join(self.mask.warnings)
        if band is not None and not band.is_full:
            note = "\n".join(filter(None, [note, f"R over the acquired {band.describe()}"]))
        if self.sampling is not None and not self.sampling.fully_sampled:
            if self.mask_panel.kind() == "data":
                acs = self.sampling.acs
                own = f"data's own sampling, ACS {acs[0]} x {acs[1]}"
            else:
                own = (
                    f"mask on top of the data's own sampling (R {self.sampling.acceleration:.2f});"
                    + (" R of the full grid" if band is None or band.is_full else "")
                )
            note = "\n".join(filter(None, [own, note]))
        self.mask_panel.set_achieved(achieved, sampled, inside.size, note)
        self.kspace_view.set_mask(arr)
        self.kspace_view.set_acs(self.acs_band())

    def acs_band(self) -> tuple[int, int] | None:
        """Columns ``[c0, c1)`` of the fully sampled centre of a 1-D mask (None for 2-D)."""
        if self.mask is None:
            return None
        arr = self.mask.array
        if not np.all(arr == arr[:1]):
            return None
        line = arr[0]
        centre = line.size // 2
        if not line[centre]:
            return None
        c0, c1 = centre, centre + 1
        while c0 > 0 and line[c0 - 1]:
            c0 -= 1
        while c1 < line.size and line[c1]:
            c1 += 1
        return (c0, c1)

    def set_acs_band(self, c0: int, c1: int) -> None:
        """Make columns ``[c0, c1)`` the fully sampled centre of a 1-D mask (mask becomes
        user-drawn); the columns of the previous band outside the new one are dropped."""
        old = self.acs_band()
        if old is None or self.mask is None:
            return
        line = self.mask.array[0].copy()
        line[old[0] : old[1]] = False
        line[c0:c1] = True
        arr = np.broadcast_to(line[None, :], self.mask.shape).copy()
        if not np.array_equal(arr, self.mask.array):
            self.set_mask_array(arr)

    def set_mask_array(self, array: np.ndarray, source_file: str | None = None) -> None:
        """Use a drawn or loaded ``(H, W)`` mask (type becomes user-drawn)."""
        from mriviewer.core.physics.masks import MaskSpec, SamplingMask

        self.mask = SamplingMask(
            np.asarray(array, dtype=bool), MaskSpec(kind="array", acceleration=1.0, seed=None)
        )
        self.mask_file = source_file
        self.mask_panel.set_kind("array", emit=False)
        self._mask_changed()

    def edit_mask(self, row: int, col: int, finished: bool = True) -> None:
        """Add or remove a line (1-D masks) or a point (2-D masks) at (row, col)."""
        if self.mask is None:
            return
        mode = self.kspace_view.view.edit_mode
        if mode == "off":
            return
        arr = self.mask.array.copy()
        one_d = bool(np.all(arr == arr[:1]))
        value = mode == "add"
        if one_d:
            arr[:, col] = value
        else:
            arr[row, col] = value
        if not arr.any():
            self.statusBar().showMessage("a mask must keep at least one sample", 4000)
            return
        if not np.array_equal(arr, self.mask.array):
            self.set_mask_array(arr)

    def save_mask_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save mask", "mask.npy", "NumPy (*.npy)")
        if path:
            self.save_mask(path)

    def save_mask(self, path: str | Path) -> bool:
        from mriviewer.core.physics.masks import save_mask

        if self.mask is None:
            self.show_error("Cannot save mask", "no mask yet: open a file first")
            return False
        try:
            save_mask(self.mask, path)
        except (OSError, MriViewerError) as exc:
            self.show_error("Cannot save mask", f"{path}: {exc}")
            return False
        return True

    def load_mask_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load mask", "", "NumPy (*.npy)")
        if path:
            self.load_mask(path)

    def load_mask(self, path: str | Path) -> bool:
        from mriviewer.core.physics.masks import load_mask

        shape = None if self.kspace is None else self.kspace.shape[-2:]
        try:
            mask = load_mask(path, shape)
        except MriViewerError as exc:
            self.show_error("Cannot load mask", str(exc))
            return False
        self.set_mask_array(mask.array, str(Path(path).resolve()))
        return True

    # ===== methods ========================================================================
    def populate_methods(self) -> None:
        """Classical methods from the core registry, then every model of the zoo."""
        from mriviewer.core import compare

        for i, name in enumerate(compare.classical_methods()):
            try:
                method = compare.get_method(name)
                settings = method.settings()
                doc = (type(method).__doc__ or "").strip().splitlines()
                summary = (doc[0] if doc else name).replace("``", "")
                text = f"{name}: {summary}\n\nsettings:\n{_card_text(settings)}"
            except Exception as exc:  # noqa: BLE001 - show the problem in the card
                text = f"cannot build {name}: {exc}"
            self.methods_panel.add_method(name, name, text, checked=i == 0)
        skipped = compare.plugin_failures()  # plugins that failed to load: say so, run the rest
        if skipped:
            more = f" (and {len(skipped) - 1} more: mriviewer methods)" if len(skipped) > 1 else ""
            self.statusBar().showMessage(skipped[0].describe() + more, 15000)
        if self.methods_panel.list.count():
            self.methods_panel.list.setCurrentRow(0)
        try:
            from mriviewer.core import checkpoints
        except ModuleNotFoundError as exc:
            if exc.name != "mriviewer.core.checkpoints":
                raise
            return
        try:
            models = checkpoints.list_models()
        except Exception as exc:  # noqa: BLE001 - a broken zoo must not stop the app
            self.show_error("Model zoo", f"cannot list models: {exc}")
            return
        for entry in models:
            key = f"model:{entry.get('path') or entry['name']}"
            card = entry.get("card") or {"error": entry.get("error", "no model card")}
            self.model_cards[key] = card
            self.zoo_keys[entry["name"]] = key
            self.methods_panel.add_method(
                key, f"model: {entry['name']}", _card_text(card), tooltip=str(entry.get("path", ""))
            )

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model", "", "Model weights (*.safetensors);;All files (*)"
        )
        if path:
            self.open_model(path)

    def open_model(self, path: str | Path) -> bool:
        """Load a model file; it joins the method list (checked) with its card shown."""
        path = str(Path(path).resolve())
        try:
            from mriviewer.core.recon.model_method import load_model_method

            method = load_model_method(path)
        except ModuleNotFoundError as exc:
            self.show_error("Cannot open model", f"{path}: model support is not installed ({exc})")
            return False
        except MriViewerError as exc:
            text = str(exc) if path in str(exc) else f"{path}: {exc}"
            self.show_error("Cannot open model", text)
            return False
        except Exception as exc:  # noqa: BLE001 - incompatible files must not crash the app
            self.show_error(
                "Cannot open model", f"{path}: incompatible model ({type(exc).__name__}: {exc})"
            )
            return False
        card = getattr(method, "card", None)
        card = card.to_dict() if hasattr(card, "to_dict") else (card or method.settings())
        key = f"model:{path}"
        self.model_cards[key] = card
        if path not in self.model_files:
            self.model_files.append(path)
        item = self.methods_panel.add_method(
            key, f"model: {Path(path).stem}", _card_text(card), checked=True, tooltip=path
        )
        item.setCheckState(Qt.CheckState.Checked)
        self.methods_panel.select(key)
        return True

    # ===== runs ===========================================================================
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
        self.run_methods = methods
        for i, key in enumerate(methods):
            self.traces[key] = MethodTrace(key, self.methods_panel.label(key), method_color(i))
        for key in list(self.traces):
            if key not in methods:
                del self.traces[key]
        self.curves.clear_curves()
        self._curve_counts.clear()
        self._pending_layout = [REFERENCE, *methods]
        self._follow = True
        self.iter_slider.setRange(0, 0)
        kind = self.reference_combo.currentData()
        file_reference = self.volume is not None and self.volume.has_reference
        request = RunRequest(
            kspace=self.kspace,
            mask=self.effective_mask().copy(),
            # the file's own reference (RSS convention), else computed by the core from the
            # fully sampled k-space in the chosen convention; none for undersampled data
            reference=self.reference if (file_reference and kind == "rss") else None,
            recon_matrix=tuple(self.reference.shape),
            reference_kind=kind,
            metrics_region=self.region_combo.currentData(),
            fully_sampled=bool(self.sampling.fully_sampled) if self.sampling else None,
            methods=methods,
            device=self.methods_panel.device_combo.currentText() or "cpu",
            source=f"{self.volume.path}#slice{self.volume.slice_index}" if self.volume else "",
            settings=dict(settings or {}),
            imports=list(self.plugin_modules),
        )
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

    def _lay_out_run(self) -> None:
        """Lay out the reference and one pane per method of the run just started."""
        names, self._pending_layout = self._pending_layout, None
        if not names:
            return
        methods = names[1:]
        waiting = {k: f"{self.traces[k].label}<br>waiting…" for k in methods if k in self.traces}
        self.grid.set_panes(names, fresh=waiting)
        self._shown = {k: v for k, v in self._shown.items() if k not in methods}
        self._keep_spare_panes()
        if not self.refresh_timer.isActive():  # results are shown in a later turn
            self.refresh_timer.start()

    def cancel(self) -> None:
        if self.controller.running:
            self.controller.cancel()
            self.methods_panel.progress.setText("cancelling…")

    def _keep_spare_panes(self, *_args) -> None:
        """Have the grid build, in idle time, the panes a run of the checked methods needs."""
        missing = [m for m in self.methods_panel.checked() if m not in self.grid.panes]
        self.grid.keep_spare_panes(len(missing))

    def _on_prepared(self, info: dict) -> None:
        """The core's reference (the convention's image the metrics use) and its warnings."""
        reference = info.get("reference")
        self.reference_kind = info.get("reference_kind")
        if reference is not None and self.ground_truth:
            self.reference = np.asarray(reference, dtype=np.float32)
            self._shown.pop(REFERENCE, None)
        self.run_warnings = list(info.get("warnings") or [])
        if self.run_warnings:
            self.error_label.setText("; ".join(self.run_warnings)[:200])
            self.statusBar().showMessage(self.run_warnings[0], 10000)

    def _metrics_setting_changed(self) -> None:
        """A new reference convention or metric region: the shown comparison is run again (coil
        maps are cached), so no figure mixes conventions."""
        if not self.ground_truth or not self.traces or self.controller.running:
            return
        if self.reference_combo.currentData() == "rss" and self.volume is not None:
            # back to the file's (or the RSS) reference for display
            try:
                _, self.reference, _ = self._read_slice(self.volume, self.volume.slice_index)
            except MriViewerError as exc:
                self.show_error("Cannot read slice", str(exc))
                return
        self.run(list(self.run_methods))

    def _on_method_started(self, name: str, info: dict) -> None:
        expected = info.get("expected_iterations")
        if name in self.traces and isinstance(expected, int):
            self.curves.expect_iterations(expected)

    def _on_iteration(self, payload: IterationPayload) -> None:
        trace = self.traces.get(payload.method)
        if trace is None:
            return
        trace.add(payload)
        if not self.refresh_timer.isActive():
            self.refresh_timer.start()

    def _on_method_finished(self, name: str, summary: dict) -> None:
        trace = self.traces.get(name)
        if trace is not None:
            trace.settings = summary.get("settings", {})
            trace.peak_memory_mb = max(trace.peak_memory_mb, summary.get("peak_memory_mb", 0.0))

    def _on_method_failed(self, name: str, reason: str) -> None:
        trace = self.traces.get(name)
        if trace is not None:
            trace.error = reason
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

    # ===== display ========================================================================
    def max_iteration(self) -> int:
        its = [max(t.iterations) for t in self.traces.values() if t.iterations]
        return max(its) if its else 0

    def refresh(self) -> None:
        """Apply streamed results now: slider range, panes, table and curves."""
        self._refresh_panes()
        self.curves_timer.stop()
        self._refresh_curves()

    def _refresh_streamed(self) -> None:
        """Throttled update while a run streams: panes now, curves one event-loop turn later."""
        self._refresh_panes()
        if not self.curves_timer.isActive():
            self.curves_timer.start()

    def _refresh_panes(self) -> None:
        if self._pending_layout:
            self._lay_out_run()
        top = self.max_iteration()
        follow = self._follow or self.iter_slider.value() >= self.iter_slider.maximum()
        self.iter_slider.blockSignals(True)
        self.iter_slider.setRange(0, top)
        if follow:
            self.iter_slider.setValue(top)
        self.iter_slider.blockSignals(False)
        self.show_iteration(self.iter_slider.value(), move_marker=False)

    def _refresh_curves(self) -> None:
        for trace in self.traces.values():
            if trace.iterations and self._curve_counts.get(trace.key) != len(trace.iterations):
                self._curve_counts[trace.key] = len(trace.iterations)
                self.curves.set_curve(
                    trace.key,
                    trace.label,
                    trace.color,
                    trace.iterations,
                    {
                        slot: [d.get(m, np.nan) for d in trace.metrics]
                        for slot, m in zip(("psnr", "ssim"), self.measures(), strict=True)
                    },
                )
        self.curves.set_iteration_span(self.max_iteration())
        self.curves.set_marker(self.iter_slider.value())

    def _iteration_changed(self, value: int) -> None:
        self._follow = value >= self.iter_slider.maximum()
        self.show_iteration(value)

    def step_iteration(self, delta: int) -> None:
        self.iter_slider.setValue(self.iter_slider.value() + delta)

    def show_iteration(self, iteration: int, move_marker: bool = True) -> None:
        """Each pane shows its latest iteration <= ``iteration`` (and the curves' marker moves
        there unless ``move_marker`` is False)."""
        self.iter_label.setText(f"{iteration} / {self.iter_slider.maximum()}")
        if move_marker:
            self.curves.set_marker(iteration)
        if self.reference is None:
            return
        mode = self.display_mode
        errors = self.grid.error_visible
        pane = self.grid.panes.get(REFERENCE)
        if pane is not None:
            state = (id(pane), mode, id(self.reference))
            if self._shown.get(REFERENCE) != state:  # redraw only what changed (throttled UI)
                self._shown[REFERENCE] = state
                self.grid.set_image(
                    REFERENCE, display_array(self.reference, mode), title=self.reference_title()
                )
        for key, trace in self.traces.items():
            pane = self.grid.panes.get(key)
            if pane is None:
                continue
            idx = trace.index_at(iteration)
            if idx is None:
                status = trace.error or ("waiting…" if not trace.iterations else "")
                pane.set_title(f"{trace.label}<br>{status}")
                self._shown.pop(key, None)
                continue
            image = trace.images[idx]
            state = (id(pane), mode, errors, id(image), id(self.reference))
            if self._shown.get(key) == state:
                continue
            self._shown[key] = state
            met = trace.metrics[idx]
            title = (
                f"<span style='color:{trace.color}'>{trace.label}</span><br>"
                f"{self.metrics_text(met)} · it {trace.iterations[idx]}"
            )
            # error maps need a ground truth: none against the acquired data's RSS
            err = error_array(image, self.reference, mode) if errors and self.ground_truth else None
            self.grid.set_image(key, display_array(image, mode), title=title, error=err)
        self._update_table()
        self._update_note()

    def _update_table(self) -> None:
        it = self.iter_slider.value()
        roi = self.grid.roi_stats()
        rows = []
        if REFERENCE in roi:
            rows.append(
                {"method": REFERENCE, "ROI mean": roi[REFERENCE][0], "ROI std": roi[REFERENCE][1]}
            )
        for key, trace in self.traces.items():
            idx = trace.index_at(it)
            row = {
                "method": trace.label,
                "color": trace.color,
                "peak mem (MB)": trace.peak_memory_mb,
            }
            if idx is not None:
                met = trace.metrics[idx]
                row.update(
                    {
                        "iteration": trace.iterations[idx],
                        "PSNR (dB)": met.get("psnr"),
                        "SSIM": met.get("ssim"),
                        "NMSE": met.get("nmse"),
                        "DC residual": met.get("dc_residual"),
                        "change": met.get("rel_change"),
                        "time (s)": trace.elapsed[idx],
                    }
                )
            elif trace.error:
                row["iteration"] = "failed"
            if key in roi:
                row["ROI mean"], row["ROI std"] = roi[key]
            rows.append(row)
        self.table.set_rows(rows)

    def measures(self) -> tuple[str, str]:
        """The two per-iteration measures shown: PSNR/SSIM, or without ground truth the
        data-consistency residual and the relative change."""
        return ("psnr", "ssim") if self.ground_truth else ("dc_residual", "rel_change")

    def metrics_text(self, met: dict) -> str:
        """One line of a method's metrics for pane titles and figure captions."""
        if self.ground_truth:
            return f"PSNR {met.get('psnr', np.nan):.2f} dB · SSIM {met.get('ssim', np.nan):.3f}"
        change = met.get("rel_change", np.nan)
        return (
            f"DC residual {met.get('dc_residual', np.nan):.4f} · "
            f"change {change:.1e}" + ("" if np.isfinite(change) else " (first iterate)")
        ).replace("change nan (first iterate)", "first iterate")

    def reference_title(self) -> str:
        """Title of the reference pane: what the image is."""
        if not self.ground_truth:
            return "acquired data, zero-filled RSS<br>not a reference: no ground truth"
        kind = self.reference_kind or self.reference_combo.currentData()
        name = {"rss": "RSS", "sense": "SENSE"}.get(kind, kind)
        region = " · foreground" if self.region_combo.currentData() == "foreground" else ""
        return f"reference ({name} of the fully sampled data){region}<br>&nbsp;"

    def reference_description(self) -> str:
        """The metric convention in words (notes, captions, sidecars)."""
        from mriviewer.core.reference import describe_reference

        if not self.ground_truth:
            return describe_reference(None)
        kind = self.reference_kind or self.reference_combo.currentData()
        return describe_reference(kind, self.region_combo.currentData())

    def _update_note(self) -> None:
        if self.reference is None:
            return
        lo, hi = self.grid.levels()
        if self.ground_truth:
            what = (
                f"{self.reference_description()}; PSNR/SSIM/NMSE on |image| (fastMRI definitions),"
                f" data_range = max(reference) = {float(self.reference.max()):.4g}"
            )
        else:
            r = self.sampling.acceleration if self.sampling is not None else float("nan")
            what = (
                f"k-space undersampled (R {r:.2f}): no ground truth, no PSNR/SSIM/NMSE; shown: "
                "data-consistency residual ||M F S x - y|| / ||y|| and change per iteration"
            )
        self.metrics_note.setText(
            f"{what}   ·   display: {self.display_mode}, "
            f"window [{lo:.4g}, {hi:.4g}] (same for all panes)"
        )

    def set_display_mode(self, mode: str) -> None:
        if mode not in DISPLAY_MODES:
            raise ValueError(mode)
        self.display_mode = mode
        for m, act in self.mode_actions.items():
            act.setChecked(m == mode)
        self.reset_levels()
        self.show_iteration(self.iter_slider.value())

    def reset_levels(self) -> None:
        """Window/level = reference 1st-99th percentile (fixed range for phase)."""
        if self.reference is None:
            return
        lo, hi = default_levels(self.reference, self.display_mode)
        self.grid.set_levels(lo, hi)
        span = (hi - lo) if self.display_mode != "phase" else np.pi
        self.grid.set_error_levels(0.0, 0.25 * span)

    def adjust_levels(self, brightness: int = 0, contrast: int = 0) -> None:
        """``[``/``]`` shift the window by 5 %; ``{``/``}`` narrow or widen it by 10 %."""
        lo, hi = self.grid.levels()
        width = hi - lo
        centre = (lo + hi) / 2 - brightness * 0.05 * width
        width *= 1.1 if contrast < 0 else (1 / 1.1 if contrast > 0 else 1.0)
        self.grid.set_levels(centre - width / 2, centre + width / 2)

    def set_error_maps(self, visible: bool) -> None:
        self.error_action.setChecked(visible)
        self.grid.set_error_visible(visible)
        self.show_iteration(self.iter_slider.value())

    def set_roi(self, visible: bool) -> None:
        self.roi_action.setChecked(visible)
        self.grid.set_roi_visible(visible)
        self._update_table()

    # ===== export =========================================================================
    def _ask_save(self, title: str, default: str, filters: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, default, filters)
        return path

    def export_figure_dialog(self) -> None:
        path = self._ask_save(
            "Export figure", "figure.pdf", "PDF (*.pdf);;PNG (*.png);;SVG (*.svg)"
        )
        if path:
            self.export_figure(path)

    def figure_spec(self):
        """The figure as shown: the panes' arrays, levels, colour maps, curves and iteration."""
        from mriviewer.core.figures import FigureCurve, FigurePane, FigureSpec

        panes = []
        for key, pane in self.grid.panes.items():
            if pane.data is None:
                continue
            title = (
                self.reference_title().split("<br>")[0]
                if key == REFERENCE
                else self.traces[key].label
            )
            if key != REFERENCE:
                idx = self.traces[key].index_at(self.iter_slider.value())
                if idx is not None:
                    met = self.traces[key].metrics[idx]
                    title += "\n" + self.metrics_text(met).replace(" · ", ", ")
            panes.append(
                FigurePane(title, pane.data, pane.error if self.grid.error_visible else None)
            )
        curves = [
            FigureCurve(
                t.label,
                list(t.iterations),
                {m: [d.get(m, np.nan) for d in t.metrics] for m in self.measures()},
                color=t.color,
            )
            for t in self.traces.values()
            if t.iterations
        ]
        data_range = float(self.reference.max()) if self.reference is not None else float("nan")
        return FigureSpec(
            panes=panes,
            levels=self.grid.levels(),
            cmap=IMAGE_CMAP,
            error_levels=self.grid.error_levels(),
            error_cmap=ERROR_CMAP,
            curves=curves,
            current_iteration=self.iter_slider.value(),
            colorbar_label=self.display_mode,
            curve_metrics=self.measures(),
            note=(
                f"{self.reference_description()}; metrics on |image|, data_range = "
                f"{data_range:.4g}; {self.mask_description()}"
                if self.ground_truth
                else f"{self.reference_description()}; {self.mask_description()}"
            ),
        )

    def mask_description(self) -> str:
        if self.mask is None:
            return "no mask"
        spec = self.mask.spec
        arr = self.effective_mask()
        band = self.acquired_band() if self.kspace is not None else None
        if band is not None and not band.is_full:  # R over the acquired band (zero padding)
            arr = arr[:, band.start : band.stop]
        achieved = arr.size / max(int(arr.sum()), 1)
        if self.mask_panel.kind() == "data":
            return f"the data's own sampling, R = {achieved:.2f}"
        on_top = (
            " on top of the data's own sampling (R of the full grid)"
            if self.sampling is not None and not self.sampling.fully_sampled
            else ""
        )
        if spec.kind == "array":
            return f"user mask{on_top}, achieved R = {achieved:.2f}"
        return (
            f"{spec.kind} mask{on_top} R = {spec.acceleration:g} (achieved {achieved:.2f}), "
            f"seed {spec.seed}"
        )

    def provenance(self, out_path: Path | None = None) -> dict[str, Any]:
        """Everything needed to redo the comparison (file + hash, slice, mask, methods, levels)."""
        from mriviewer.core.figures import sha256_file
        from mriviewer.core.physics.masks import save_mask

        info: dict[str, Any] = {"mriviewer": __version__}
        if self.volume is not None:
            info["file"] = {
                "path": str(self.volume.path),
                "sha256": sha256_file(self.volume.path),
                "format": self.volume.format,
            }
            info["slice"] = self.volume.slice_index
        if self.mask is not None:
            mask_info: dict[str, Any] = {
                "achieved_acceleration": self.mask.achieved_acceleration,
                "shape": list(self.mask.shape),
            }
            if self.mask_panel.kind() == "data":
                mask_info["spec"] = {"kind": "data", "description": "the data's own sampling"}
            elif self.mask.spec.kind == "array":
                if out_path is not None:
                    mpath = out_path.with_name(out_path.name + ".mask.npy")
                    save_mask(self.mask, mpath)
                    mask_info["file"] = mpath.name
                    mask_info["sha256"] = sha256_file(mpath)
                elif self.mask_file:
                    mask_info["file"] = self.mask_file
            else:
                mask_info["spec"] = self.mask.spec.to_dict()
            info["mask"] = mask_info
        methods = []
        for key, trace in self.traces.items():
            entry: dict[str, Any] = {
                "name": key,
                "label": trace.label,
                "settings": trace.settings,
                "complete": trace.complete,
            }
            if key in self.model_cards:
                entry["model_card_sha256"] = _card_hash(self.model_cards[key])
                path = Path(key[len("model:") :])
                if path.is_file():
                    entry["weights_sha256"] = sha256_file(path)
            idx = trace.index_at(self.iter_slider.value())
            if idx is not None:
                entry["iteration"] = trace.iterations[idx]
                entry["metrics"] = trace.metrics[idx]
            methods.append(entry)
        info["methods"] = methods
        info["ground_truth"] = self.ground_truth
        info["reference"] = self.reference_kind if self.ground_truth else None
        info["reference_definition"] = self.reference_description()
        info["metrics_region"] = self.region_combo.currentData()
        if self.sampling is not None:
            info["data_sampling"] = self.sampling.to_dict()
        info["warnings"] = list(self.run_warnings)
        info["device"] = self.methods_panel.device_combo.currentText()
        info["display"] = self.display_mode
        info["levels"] = list(self.grid.levels())
        info["error_levels"] = list(self.grid.error_levels()) if self.grid.error_visible else None
        info["iteration"] = self.iter_slider.value()
        return info

    def export_figure(self, path: str | Path) -> bool:
        from mriviewer.core.figures import save_figure

        path = Path(path)
        try:
            save_figure(self.figure_spec(), path, sidecar=self.provenance(path))
        except MriViewerError as exc:
            self.show_error("Cannot export figure", str(exc))
            return False
        except (OSError, ValueError) as exc:
            self.show_error("Cannot export figure", f"{path}: {exc}")
            return False
        self.statusBar().showMessage(f"figure written to {path}", 6000)
        return True

    def export_metrics_dialog(self) -> None:
        path = self._ask_save("Export metrics", "metrics.csv", "CSV (*.csv);;JSON (*.json)")
        if path:
            self.export_metrics(path)

    def metric_rows(self) -> list[dict[str, Any]]:
        rows = []
        for trace in self.traces.values():
            for i, it in enumerate(trace.iterations):
                met = trace.metrics[i]
                rows.append(
                    {
                        "method": trace.key,
                        "iteration": it,
                        "psnr": met.get("psnr"),
                        "ssim": met.get("ssim"),
                        "nmse": met.get("nmse"),
                        "dc_residual": met.get("dc_residual"),
                        "rel_change": met.get("rel_change"),
                        "seconds": trace.elapsed[i],
                        "peak_memory_mb": trace.peak_memory_mb,
                        "final": i == len(trace.iterations) - 1 and trace.complete,
                    }
                )
        return rows

    def export_metrics(self, path: str | Path) -> bool:
        from mriviewer.core.io.atomic import atomic_write_text

        path = Path(path)
        rows = self.metric_rows()
        try:
            if path.suffix.lower() == ".json":
                text = json.dumps({"provenance": self.provenance(), "rows": rows}, indent=2)
            elif path.suffix.lower() == ".csv":
                buf = io.StringIO()
                writer = csv.DictWriter(
                    buf,
                    fieldnames=[
                        "method",
                        "iteration",
                        "psnr",
                        "ssim",
                        "nmse",
                        "dc_residual",
                        "rel_change",
                        "seconds",
                        "peak_memory_mb",
                        "final",
                    ],
                )
                writer.writeheader()
                writer.writerows(rows)
                text = buf.getvalue()
            else:
                raise MriViewerError("metrics export needs a .csv or .json file name", path)
            atomic_write_text(path, text)
        except (MriViewerError, OSError) as exc:
            self.show_error("Cannot export metrics", f"{exc}")
            return False
        return True

    def export_recons_dialog(self) -> None:
        path = self._ask_save(
            "Export reconstructions",
            "recons.h5",
            "HDF5 (*.h5);;NumPy (*.npy);;DICOM, one file per method (*.dcm);;"
            "NIfTI, one file per method (*.nii.gz *.nii)",
        )
        if path:
            self.export_recons(path)

    def export_recons(self, path: str | Path) -> bool:
        """Final images (original units, complex64): ``.npy`` stack ``(M, h, w)`` in method order
        (names in ``<file>.json``), ``.h5`` with one group per method holding every iteration, or
        DICOM / NIfTI (``.dcm``, ``.nii``, ``.nii.gz``): ``<stem>_<method><suffix>`` per method's
        final image, see :func:`mriviewer.core.export.write_reconstructions`."""
        from mriviewer.core.export import recon_suffix, write_reconstructions
        from mriviewer.core.io.atomic import atomic_write_path, atomic_write_text

        path = Path(path)
        traces = [t for t in self.traces.values() if t.images]
        try:
            if not traces:
                raise MriViewerError("no reconstructions yet: run a method first", path)
            if path.suffix.lower() == ".npy":
                stack = np.stack([t.images[-1] for t in traces]).astype(np.complex64)
                with atomic_write_path(path) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, stack, allow_pickle=False)
                atomic_write_text(
                    path.with_name(path.name + ".json"),
                    json.dumps(
                        {"methods": [t.key for t in traces], "provenance": self.provenance()},
                        indent=2,
                    ),
                )
            elif path.suffix.lower() in (".h5", ".hdf5"):
                import h5py

                with atomic_write_path(path) as tmp, h5py.File(tmp, "w") as h5:
                    h5.attrs["provenance"] = json.dumps(self.provenance())
                    h5.create_dataset("reference", data=self.reference)
                    for t in traces:
                        g = h5.create_group(t.key.replace("/", "|"))
                        g.create_dataset("final", data=t.images[-1])
                        g.create_dataset("iterations", data=np.stack(t.images))
                        g.create_dataset("iteration_numbers", data=np.asarray(t.iterations))
                        g.attrs["metrics"] = json.dumps(t.metrics[-1])
            elif recon_suffix(path) in (".dcm", ".nii", ".nii.gz"):
                info = self.provenance()
                common = {
                    k: json.dumps(info[k]) if isinstance(info.get(k), dict) else info.get(k)
                    for k in ("mask", "reference", "reference_definition", "slice")
                }
                common["source"] = info.get("file", {}).get("path")
                if self.mask is not None:
                    common["acceleration"] = self.mask.achieved_acceleration
                attrs = {
                    t.key: {**common, "method": t.key, "method_settings": json.dumps(t.settings)}
                    for t in traces
                }
                header = self.volume.header if self.volume is not None else None
                done = write_reconstructions(
                    path, {t.key: t.images[-1] for t in traces}, attrs, header=header
                )
                names = ", ".join(p.name for p in done.paths)
                self.statusBar().showMessage("; ".join([f"wrote {names}", *done.notes]), 10000)
            else:
                raise MriViewerError(
                    "reconstructions export needs a .npy, .h5, .dcm, .nii or .nii.gz file name",
                    path,
                )
        except (MriViewerError, OSError) as exc:
            self.show_error("Cannot export reconstructions", str(exc))
            return False
        return True

    # ===== session ========================================================================
    def session_state(self, session_path: Path | None = None) -> SessionState:
        from mriviewer.core.physics.masks import save_mask

        mask_file = None
        data_kind = self.mask_panel.kind() == "data"
        if self.mask is not None and self.mask.spec.kind == "array" and not data_kind:
            if session_path is not None:
                mpath = mask_file_for(session_path)
                save_mask(self.mask, mpath)
                mask_file = mpath.name
            else:
                mask_file = self.mask_file
        return SessionState(
            file=str(self.volume.path) if self.volume is not None else None,
            slice=self.volume.slice_index if self.volume is not None else 0,
            coil=str(self.data_panel.coil_combo.currentData() or "rss"),
            mask_spec={"kind": "data"} if data_kind else self.mask_spec().to_dict(),
            mask_file=mask_file,
            methods=self.methods_panel.checked(),
            models=list(self.model_files),
            device=self.methods_panel.device_combo.currentText(),
            levels=list(self.grid.levels()),
            error_levels=list(self.grid.error_levels()),
            display=self.display_mode,
            error_maps=self.grid.error_visible,
            view_range=self.grid.view_range(),
            iteration=self.iter_slider.value(),
            roi=self.grid.roi_state(),
            reference=self.reference_combo.currentData(),
            metrics_region=self.region_combo.currentData(),
        )

    def save_session_dialog(self) -> None:
        path = self._ask_save("Save session", "session.json", "Session (*.json)")
        if path:
            self.save_session(path)

    def save_session(self, path: str | Path) -> bool:
        path = Path(path)
        try:
            save_session(self.session_state(path), path)
        except (MriViewerError, OSError) as exc:
            self.show_error("Cannot save session", f"{path}: {exc}")
            return False
        self.statusBar().showMessage(f"session saved to {path}", 5000)
        return True

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", "Session (*.json)")
        if path:
            self.restore_session(path)

    def restore_session(self, path: str | Path) -> bool:
        """Reopen a saved session (file, slice, mask, methods, levels, view). Results are not
        stored in sessions: press Run to recompute them."""
        path = Path(path)
        try:
            state = load_session(path)
        except MriViewerError as exc:
            self.show_error("Cannot open session", str(exc))
            return False
        if state.file and not self.open_file(state.file, state.slice):
            return False
        self.data_panel.set_coil(state.coil)
        for combo, value in (
            (self.reference_combo, state.reference),
            (self.region_combo, state.metrics_region),
        ):
            index = combo.findData(value)
            if index < 0:
                self.show_error("Cannot open session", f"{path}: unknown setting {value!r}")
                return False
            combo.blockSignals(True)
            combo.setCurrentIndex(index)
            combo.blockSignals(False)
        if state.mask_file:
            mfile = Path(state.mask_file)
            if not mfile.is_absolute():
                mfile = path.parent / mfile
            if not self.load_mask(mfile):
                return False
            self.mask_panel.set_spec_values({**state.mask_spec, "kind": "array"})
        elif state.mask_spec:
            self.mask_panel.set_spec_values(state.mask_spec)
            self.regenerate_mask()
        for model in state.models:
            if f"model:{model}" not in self.methods_panel.keys():
                self.open_model(model)
        self.methods_panel.set_checked(state.methods)
        idx = self.methods_panel.device_combo.findText(state.device)
        if idx >= 0:
            self.methods_panel.device_combo.setCurrentIndex(idx)
        if state.display in DISPLAY_MODES:
            self.set_display_mode(state.display)
        self.set_error_maps(state.error_maps)
        if state.levels:
            self.grid.set_levels(*state.levels)
        if state.error_levels:
            self.grid.set_error_levels(*state.error_levels)
        if state.roi:
            self.grid.set_roi_state(state.roi)
            self.roi_action.setChecked(True)
        if state.view_range:
            self.grid.set_view_range(state.view_range)
        self.statusBar().showMessage(f"session restored from {path}", 5000)
        return True

    # ===== lifetime =======================================================================
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not getattr(self, "_docks_sized", False):
            self._docks_sized = True
            height = max(200, int(self.height() * 0.27))
            self.resizeDocks([self.docks["curves"]], [height], Qt.Orientation.Vertical)
            QTimer.singleShot(0, self.grid.reset_view)

    # ===== close ==========================================================================
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
