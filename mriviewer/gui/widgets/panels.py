"""Side panels: data (header, slice, coil, k-space), mask, methods, metrics table, curves."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGraphicsItem,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from mriviewer.gui.widgets.kspace_view import KSpaceView

MASK_TYPES = {
    "1-D random": "random",
    "1-D equispaced": "equispaced",
    "2-D Poisson disc": "poisson",
    "2-D variable density": "gaussian",
    "user-drawn": "array",
    "data's own sampling": "data",
}
METHOD_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def method_color(index: int) -> str:
    return METHOD_COLORS[index % len(METHOD_COLORS)]


def reference_line(summary: dict[str, Any]) -> str:
    """The data panel's reference line from a volume summary with its ``sampling``."""
    sampling = summary.get("sampling") or {}
    if summary.get("reference"):
        return "stored in the file"
    if sampling.get("fully_sampled", True):
        return "from the fully sampled k-space"
    acs = sampling.get("acs", ["?", "?"])
    return (
        f"none: undersampled, R {sampling.get('acceleration', float('nan')):.2f}, "
        f"ACS {acs[0]} x {acs[1]}"
    )


class DataPanel(QWidget):
    """Header summary, slice and coil browsers, and the k-space view (mask drawn over it)."""

    sliceChanged = pyqtSignal(int)
    coilChanged = pyqtSignal()
    encodingChanged = pyqtSignal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.open_button = QPushButton("Open k-space file…")
        self.open_button.setObjectName("openButton")
        layout.addWidget(self.open_button)
        self.summary = QPlainTextEdit()
        self.summary.setObjectName("headerSummary")
        self.summary.setReadOnly(True)
        self.summary.setMaximumHeight(110)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setPointSize(8)
        self.summary.setFont(font)
        layout.addWidget(self.summary)
        row = QHBoxLayout()
        row.addWidget(QLabel("Slice"))
        self.slice_slider = QSlider(Qt.Orientation.Horizontal)
        self.slice_slider.setObjectName("sliceSlider")
        self.slice_spin = QSpinBox()
        self.slice_spin.setObjectName("sliceSpin")
        row.addWidget(self.slice_slider, 1)
        row.addWidget(self.slice_spin)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("k-space"))
        self.coil_combo = QComboBox()
        self.coil_combo.setObjectName("coilCombo")
        row.addWidget(self.coil_combo, 1)
        layout.addLayout(row)
        # Encoding spaces of an MRD file; shown only when the file has more than one.
        self.encoding_row = QWidget()
        row = QHBoxLayout(self.encoding_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Encoding"))
        self.encoding_combo = QComboBox()
        self.encoding_combo.setObjectName("encodingCombo")
        row.addWidget(self.encoding_combo, 1)
        self.encoding_row.setVisible(False)
        layout.addWidget(self.encoding_row)
        self.encoding_combo.activated.connect(
            lambda i: self.encodingChanged.emit(int(self.encoding_combo.itemData(i)))
        )
        self.kspace_view = KSpaceView()
        self.kspace_view.setMinimumHeight(120)
        layout.addWidget(self.kspace_view, 1)
        self.slice_slider.valueChanged.connect(self._slider_moved)
        self.slice_spin.valueChanged.connect(self._spin_changed)
        self.coil_combo.currentIndexChanged.connect(lambda _i: self.coilChanged.emit())
        self._guard = False

    def set_volume_info(
        self, summary: dict[str, Any], num_slices: int, num_coils: int, current: int
    ) -> None:
        lines = [
            f"file     {summary.get('path')}",
            f"format   {summary.get('format')}",
            f"slices   {summary.get('slices')}   coils {summary.get('coils')}",
            f"matrix   {tuple(summary.get('matrix', ()))}  recon {tuple(summary.get('recon_matrix', ()))}",
            f"reference {reference_line(summary)}",
        ]
        acq = summary.get("acquisition")
        if acq:
            lines.append(f"acq      {json.dumps(acq) if not isinstance(acq, str) else acq}"[:200])
        noise = summary.get("noise") or {}
        if "condition_number" in noise:
            state = "prewhitened" if noise.get("prewhitened") else "not prewhitened"
            lines.append(f"noise    {state}, condition number {noise['condition_number']:.3g}")
        self.summary.setPlainText("\n".join(lines))
        self._set_encodings(summary.get("header") or {})
        self._guard = True
        try:
            for w in (self.slice_slider, self.slice_spin):
                w.setRange(0, max(0, num_slices - 1))
                w.setValue(current)
            self.coil_combo.blockSignals(True)
            self.coil_combo.clear()
            self.coil_combo.addItem("RSS of all coils", "rss")
            for c in range(num_coils):
                self.coil_combo.addItem(f"coil {c}", str(c))
            self.coil_combo.blockSignals(False)
        finally:
            self._guard = False

    def _set_encodings(self, header: dict[str, Any]) -> None:
        """Fill the encoding selector from ``header["encodings"]``; hidden for one encoding."""
        encodings = header.get("encodings") or []
        self.encoding_combo.blockSignals(True)
        self.encoding_combo.clear()
        for e in encodings:
            size = " x ".join(str(n) for n in e.get("encoded_matrix") or []) or "?"
            self.encoding_combo.addItem(
                f"{e['index']}: {size}, {e['acquisitions']} acquisitions", e["index"]
            )
        current = self.encoding_combo.findData(header.get("encoding", 0))
        self.encoding_combo.setCurrentIndex(max(current, 0))
        self.encoding_combo.blockSignals(False)
        self.encoding_row.setVisible(len(encodings) > 1)

    def coil(self) -> int | None:
        data = self.coil_combo.currentData()
        return None if data in (None, "rss") else int(data)

    def set_coil(self, coil: str) -> None:
        idx = self.coil_combo.findData(coil)
        if idx >= 0:
            self.coil_combo.setCurrentIndex(idx)

    def set_slice(self, index: int) -> None:
        self.slice_spin.setValue(index)

    def _slider_moved(self, value: int) -> None:
        if not self._guard:
            self.slice_spin.setValue(value)

    def _spin_changed(self, value: int) -> None:
        if self._guard:
            return
        self._guard = True
        self.slice_slider.setValue(value)
        self._guard = False
        self.sliceChanged.emit(value)


class MaskPanel(QWidget):
    """Mask type, acceleration, centre fraction, calibration size, seed, edit tool, save/load."""

    specChanged = pyqtSignal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        self.kind_combo = QComboBox()
        self.kind_combo.setObjectName("maskKind")
        for label, kind in MASK_TYPES.items():
            self.kind_combo.addItem(label, kind)
        form.addRow("Type", self.kind_combo)
        self.accel_spin = QDoubleSpinBox()
        self.accel_spin.setObjectName("maskAccel")
        self.accel_spin.setRange(1.0, 32.0)
        self.accel_spin.setSingleStep(0.5)
        self.accel_spin.setValue(4.0)
        form.addRow("Acceleration R", self.accel_spin)
        self.cf_spin = QDoubleSpinBox()
        self.cf_spin.setObjectName("maskCenterFraction")
        self.cf_spin.setRange(0.0, 1.0)
        self.cf_spin.setDecimals(3)
        self.cf_spin.setSingleStep(0.01)
        self.cf_spin.setValue(0.08)
        form.addRow("Centre fraction (1-D)", self.cf_spin)
        self.calib_spin = QSpinBox()
        self.calib_spin.setObjectName("maskCalib")
        self.calib_spin.setRange(0, 512)
        self.calib_spin.setValue(20)
        form.addRow("Calibration (2-D, px)", self.calib_spin)
        seed_row = QHBoxLayout()
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("maskSeed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.new_seed_button = QPushButton("New")
        self.new_seed_button.setToolTip("draw a new random seed")
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.new_seed_button)
        form.addRow("Seed", seed_row)
        self.edit_combo = QComboBox()
        self.edit_combo.setObjectName("maskEditMode")
        self.edit_combo.addItem("pan / zoom", "off")
        self.edit_combo.addItem("draw: add lines / points", "add")
        self.edit_combo.addItem("draw: remove lines / points", "remove")
        form.addRow("Mouse on k-space", self.edit_combo)
        self.achieved_label = QLabel("achieved R: –")
        self.achieved_label.setObjectName("achievedR")
        self.achieved_label.setWordWrap(True)  # notes (band, data's own sampling) wrap
        font = self.achieved_label.font()
        font.setBold(True)
        self.achieved_label.setFont(font)
        self.achieved_label.setWordWrap(True)  # warnings and refusals are long lines
        form.addRow(self.achieved_label)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save mask…")
        self.load_button = QPushButton("Load mask…")
        row.addWidget(self.save_button)
        row.addWidget(self.load_button)
        form.addRow(row)
        for w in (self.accel_spin, self.cf_spin):
            w.valueChanged.connect(lambda _v: self.specChanged.emit())
        for w in (self.calib_spin, self.seed_spin):
            w.valueChanged.connect(lambda _v: self.specChanged.emit())
        self.kind_combo.currentIndexChanged.connect(lambda _i: self._kind_changed())
        self.new_seed_button.clicked.connect(self._new_seed)
        self._kind_changed(emit=False)

    def kind(self) -> str:
        return self.kind_combo.currentData()

    def set_kind(self, kind: str, emit: bool = True) -> None:
        idx = self.kind_combo.findData(kind)
        if idx < 0:
            return
        self.kind_combo.blockSignals(True)
        self.kind_combo.setCurrentIndex(idx)
        self.kind_combo.blockSignals(False)
        self._kind_changed(emit=emit)

    def _kind_changed(self, emit: bool = True) -> None:
        kind = self.kind()
        self.cf_spin.setEnabled(kind in ("random", "equispaced"))
        self.calib_spin.setEnabled(kind in ("poisson", "gaussian"))
        for w in (self.accel_spin, self.seed_spin, self.new_seed_button):
            w.setEnabled(kind not in ("array", "data"))
        if emit:
            self.specChanged.emit()

    def _new_seed(self) -> None:
        self.seed_spin.setValue(int(np.random.default_rng().integers(0, 2**31 - 1)))

    def set_spec_values(self, spec: dict[str, Any]) -> None:
        widgets = (self.accel_spin, self.cf_spin, self.calib_spin, self.seed_spin)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.accel_spin.setValue(float(spec.get("acceleration", 4.0)))
            self.cf_spin.setValue(float(spec.get("center_fraction", 0.08)))
            self.calib_spin.setValue(int(spec.get("calib", 20)))
            self.seed_spin.setValue(int(spec.get("seed") or 0))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.set_kind(spec.get("kind", "random"), emit=False)

    def set_achieved(self, achieved: float, sampled: int, total: int, note: str = "") -> None:
        text = f"achieved R: {achieved:.2f}  ({sampled}/{total} samples)"
        self.achieved_label.setText(text + (f"\n{note}" if note else ""))

    def set_problem(self, text: str) -> None:
        """Show why the settings drew no mask (one line; the previous mask stays in use)."""
        self.achieved_label.setText(f"mask not drawn: {text}")


class MethodsPanel(QWidget):
    """Checkable list of methods (classical + models), model card, device, Run and Cancel."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.list = QListWidget()
        self.list.setObjectName("methodList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        layout.addWidget(self.list, 2)
        self.open_model_button = QPushButton("Open model…")
        layout.addWidget(self.open_model_button)
        layout.addWidget(QLabel("Model card / settings"))
        self.card = QTextBrowser()
        self.card.setObjectName("modelCard")
        layout.addWidget(self.card, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Device"))
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        row.addWidget(self.device_combo, 1)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.progress = QLabel("idle")
        self.progress.setObjectName("runProgress")
        self.progress.setWordWrap(True)
        layout.addWidget(self.progress)
        self.cards: dict[str, str] = {}
        self.list.currentItemChanged.connect(self._show_card)

    def add_method(
        self, key: str, label: str, card_text: str, checked: bool = False, tooltip: str = ""
    ) -> QListWidgetItem:
        """Add (or update) a method; ``key`` is what compare.get_method receives."""
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                self.cards[key] = card_text
                return item
        item = QListWidgetItem(label)
        item.setData(Qt.ItemDataRole.UserRole, key)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        if tooltip:
            item.setToolTip(tooltip)
        self.list.addItem(item)
        self.cards[key] = card_text
        return item

    def keys(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def label(self, key: str) -> str:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == key:
                return item.text()
        return key

    def checked(self) -> list[str]:
        out = []
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(item.data(Qt.ItemDataRole.UserRole))
        return out

    def set_checked(self, keys: list[str]) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            on = item.data(Qt.ItemDataRole.UserRole) in keys
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def select(self, key: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == key:
                self.list.setCurrentRow(i)

    def _show_card(self, item, _prev=None) -> None:
        if item is None:
            self.card.clear()
            return
        self.card.setPlainText(self.cards.get(item.data(Qt.ItemDataRole.UserRole), ""))

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)


METRIC_COLUMNS = (
    "method",
    "iteration",
    "PSNR (dB)",
    "SSIM",
    "NMSE",
    "time (s)",
    "peak mem (MB)",
    "ROI mean",
    "ROI std",
    "DC residual",
    "change",
)
#: columns shown with a reference (ground truth) and without one
GT_COLUMNS = ("PSNR (dB)", "SSIM", "NMSE")
GT_FREE_COLUMNS = ("DC residual", "change")
_HEADERS = (
    "method",
    "it",
    "PSNR dB",
    "SSIM",
    "NMSE",
    "time s",
    "mem MB",
    "ROI mean",
    "ROI std",
    "DC resid.",
    "change",
)
_TOOLTIPS = (
    "method",
    "iteration shown (latest <= slider)",
    "PSNR in dB of |image| vs reference",
    "SSIM (7x7 window) of |image| vs reference",
    "normalised MSE",
    "seconds from the start of the method to this iteration",
    "peak memory: CUDA max allocated, or process RSS growth on CPU",
    "mean of the displayed values in the ROI",
    "standard deviation in the ROI",
    "data-consistency residual ||M F S x - y|| / ||y|| (no ground truth needed)",
    "relative change from the previous iteration ||x_k - x_(k-1)|| / ||x_k||",
)


class MetricsTable(QTableWidget):
    """Final (or shown-iteration) metrics per method, plus ROI statistics."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(METRIC_COLUMNS), parent)
        self.setObjectName("metricsTable")
        self.setHorizontalHeaderLabels(_HEADERS)
        for c, tip in enumerate(_TOOLTIPS):
            self.horizontalHeaderItem(c).setToolTip(tip)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.set_ground_truth(True)

    def set_ground_truth(self, available: bool) -> None:
        """Show PSNR/SSIM/NMSE with a reference, the ground-truth-free columns without one."""
        self.ground_truth = available
        for name in GT_COLUMNS:
            self.setColumnHidden(METRIC_COLUMNS.index(name), not available)
        for name in GT_FREE_COLUMNS:
            self.setColumnHidden(METRIC_COLUMNS.index(name), available)

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, col in enumerate(METRIC_COLUMNS):
                value = row.get(col)
                if value is None or (isinstance(value, float) and not np.isfinite(value)):
                    text = "–"
                elif isinstance(value, float):
                    text = f"{value:.4g}" if col != "PSNR (dB)" else f"{value:.2f}"
                    if col == "change":
                        text = f"{value:.2e}"
                else:
                    text = str(value)
                item = self.item(r, c)
                if item is None:  # reuse items: creating them on every refresh is slow
                    item = QTableWidgetItem(text)
                    self.setItem(r, c, item)
                elif item.text() != text:
                    item.setText(text)
                if c == 0 and row.get("color"):
                    item.setForeground(QColor(row["color"]))

    def cell_text(self, row: int, column: str) -> str:
        item = self.item(row, METRIC_COLUMNS.index(column))
        return "" if item is None else item.text()


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is >= ``value`` (at least 5)."""
    value = max(float(value), 5.0)
    mag = 10.0 ** np.floor(np.log10(value))
    return float(next(m * mag for m in (1.0, 2.0, 5.0, 10.0) if m * mag >= value - 1e-9))


def padded_nice_range(lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` widened outward to multiples of a 1/2/5 x 10^k step (about 4 steps).

    The curves keep such a range while results stream in and only change it when a value falls
    outside, so the axes (and their grid) are re-rendered a handful of times per run instead of
    on every streamed iteration."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return (0.0, 1.0)
    span = hi - lo
    if span <= 0:
        span = max(abs(hi), 1.0) * 0.1
    raw = span / 4.0
    mag = 10.0 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 5.0, 10.0) if m * mag >= raw)
    low = np.floor(lo / step) * step
    high = np.ceil(hi / step) * step
    if high - low < step:
        high = low + step
    return (float(low), float(high))


class CurvesWidget(pg.GraphicsLayoutWidget):
    """PSNR and SSIM versus iteration, one curve per method, a marker at the shown iteration.

    While results stream in, the y ranges only grow in whole steps (:func:`padded_nice_range`)
    and the x range in multiples of 5 iterations; a range the user zooms or pans by hand is left
    alone until the curves are cleared."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("curves")
        self.plots: dict[str, pg.PlotItem] = {}
        self.markers: dict[str, pg.InfiniteLine] = {}
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        self._span: float | None = None
        self._expected = 0
        self._y_ranges: dict[str, tuple[float, float]] = {}
        self._user_range = False
        self.readout = pg.LabelItem(justify="right", size="8pt")
        self.addItem(self.readout, row=0, col=0, colspan=2)
        for col, (metric, label) in enumerate((("psnr", "PSNR (dB)"), ("ssim", "SSIM"))):
            plot = self.addPlot(row=1, col=col)
            plot.setLabel("bottom", "iteration")
            plot.setLabel("left", label)
            plot.showGrid(x=True, y=True, alpha=0.3)
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.enableAutoSIPrefix(False)
                # tick labels only ever widen the axis: a narrower label would otherwise
                # resize the plot (and re-render everything in it) while results stream in
                axis.setStyle(autoReduceTextSpace=False)
                # the moving iteration marker would otherwise repaint (re-render) the axes
                axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            if col == 0:
                plot.addLegend(offset=(-5, -5), labelTextSize="8pt")
            plot.getViewBox().sigRangeChangedManually.connect(self._user_ranged)
            marker = pg.InfiniteLine(
                pos=0,
                angle=90,
                movable=False,
                pen=pg.mkPen("#dddd55", width=1.5, style=Qt.PenStyle.DashLine),
            )
            plot.addItem(marker, ignoreBounds=True)
            self.plots[metric] = plot
            self.markers[metric] = marker
        self.plots["ssim"].setXLink(self.plots["psnr"])
        self.ground_truth = True
        self.scene().sigMouseMoved.connect(self._mouse_moved)

    #: axis labels of the two plots, with a reference and without one
    LABELS = {
        True: {"psnr": "PSNR (dB)", "ssim": "SSIM"},
        False: {"psnr": "DC residual ||MFSx-y||/||y||", "ssim": "relative change"},
    }

    def set_ground_truth(self, available: bool) -> None:
        """Label the plots for PSNR/SSIM (with a reference) or, without one, for the
        data-consistency residual (left) and the relative change per iteration (right)."""
        self.ground_truth = available
        for slot, plot in self.plots.items():
            plot.setLabel("left", self.LABELS[available][slot])

    def clear_curves(self) -> None:
        for (metric, _name), item in list(self.curves.items()):
            self.plots[metric].removeItem(item)
            legend = self.plots[metric].legend
            if legend is not None:
                legend.removeItem(item)
        self.curves.clear()
        self._y_ranges.clear()
        self._span = None
        self._expected = 0
        self._user_range = False
        for plot in self.plots.values():
            plot.enableAutoRange(y=True)

    def _user_ranged(self, *_args) -> None:
        self._user_range = True

    def set_curve(
        self,
        name: str,
        label: str,
        color: str,
        iterations: list[int],
        values: dict[str, list[float]],
    ) -> None:
        for metric, plot in self.plots.items():
            vals = values.get(metric)
            if not vals or not np.isfinite(np.asarray(vals, float)).any():
                continue  # e.g. the change of a one-iteration method
            key = (metric, name)
            item = self.curves.get(key)
            if item is None:
                item = plot.plot(
                    [],
                    [],
                    pen=pg.mkPen(color, width=2),
                    symbol="o",
                    symbolSize=5,
                    symbolBrush=color,
                    symbolPen=None,
                    name=label if metric == "psnr" else None,
                )
                self.curves[key] = item
            # markers help with a few points; beyond that they only cost drawing time
            item.setSymbol("o" if len(iterations) <= 25 else None)
            item.setData(np.asarray(iterations, float), np.asarray(vals, float))
        if not self._user_range:
            self._grow_y_ranges()

    def _grow_y_ranges(self) -> None:
        for metric, plot in self.plots.items():
            values = [
                item.yData[np.isfinite(item.yData)]
                for (m, _name), item in self.curves.items()
                if m == metric and item.yData is not None
            ]
            values = [v for v in values if v.size]
            if not values:
                continue
            lo = float(min(v.min() for v in values))
            hi = float(max(v.max() for v in values))
            current = self._y_ranges.get(metric)
            if current is not None and current[0] <= lo and hi <= current[1]:
                continue
            if current is not None:
                lo, hi = min(lo, current[0]), max(hi, current[1])
            self._y_ranges[metric] = padded_nice_range(lo, hi)
            plot.setYRange(*self._y_ranges[metric], padding=0.02)

    def y_range(self, metric: str) -> tuple[float, float] | None:
        """The managed y range of ``metric``'s plot (None before any value)."""
        return self._y_ranges.get(metric)

    def expect_iterations(self, count: int) -> None:
        """A method announced ``count`` iterations: the x axis shows them from the start."""
        if count > self._expected:
            self._expected = count
            self.set_iteration_span(0)

    def set_iteration_span(self, top: int) -> None:
        """Show iterations 0..span on the shared x axis: the announced iteration count, or
        ``top`` rounded up to 5, 10, 20, 50, ... when a method goes beyond it, so the axes are
        re-rendered a few times per run, not for every streamed iteration."""
        span = float(self._expected) if top <= self._expected else nice_ceiling(top)
        span = max(span, 1.0)
        if self._span != span and not self._user_range:
            self._span = span
            self.plots["psnr"].setXRange(0, span, padding=0.02)

    def set_marker(self, iteration: int) -> None:
        for marker in self.markers.values():
            marker.setValue(iteration)

    def marker_value(self) -> float:
        return float(self.markers["psnr"].value())

    def _mouse_moved(self, pos) -> None:
        for metric, plot in self.plots.items():
            if plot.sceneBoundingRect().contains(pos):
                p = plot.getViewBox().mapSceneToView(pos)
                self.readout.setText(f"{metric.upper()}  iteration {p.x():.1f}, value {p.y():.4g}")
