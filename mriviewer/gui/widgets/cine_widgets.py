"""Widgets of the cine mode: the frame bar (slider, play/pause, frames per second) and the cine
dock (PSNR versus frame at the shown iteration, and the temporal x-t profiles along one row)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)


class CineBar(QWidget):
    """Frame slider, play/pause and the playback rate (frames per second)."""

    frameChanged = pyqtSignal(int)
    playToggled = pyqtSignal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("cineBar")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Frame"))
        self.play_button = QPushButton("Play")
        self.play_button.setObjectName("cinePlay")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("play / pause the series (all panes in sync)")
        self.play_button.toggled.connect(self._toggled)
        row.addWidget(self.play_button)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("frameSlider")
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self.frameChanged.emit)
        row.addWidget(self.slider, 1)
        self.label = QLabel("0 / 0")
        self.label.setObjectName("frameLabel")
        self.label.setMinimumWidth(70)
        row.addWidget(self.label)
        row.addWidget(QLabel("fps"))
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setObjectName("cineFps")
        self.fps_spin.setRange(0.5, 60.0)
        self.fps_spin.setSingleStep(1.0)
        self.fps_spin.setValue(8.0)
        self.fps_spin.setToolTip("playback rate, frames per second (also the animation export's)")
        row.addWidget(self.fps_spin)

    def _toggled(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        self.playToggled.emit(on)

    def set_frames(self, count: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, count - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.set_label(0)

    def set_label(self, frame: int) -> None:
        self.label.setText(f"{frame} / {self.slider.maximum()}")


class _StripTitle(pg.LabelItem):
    """A title that does not widen its column (pyqtgraph's LabelItem asks for its text's
    width): the x-t strips stay equally wide and a long title is clipped at the strip's edge."""

    def __init__(self, text: str, **args) -> None:
        super().__init__(text, **args)
        self.setFlag(self.GraphicsItemFlag.ItemClipsChildrenToShape, True)

    def resizeEvent(self, ev) -> None:  # noqa: N802 - Qt's name
        # a title wider than its strip shows its start (the method's name), not its middle
        too_wide = self.itemRect().width() > self.rect().width()
        self.opts["justify"] = "left" if too_wide else "center"
        super().resizeEvent(ev)

    def updateMin(self) -> None:  # noqa: N802 - pyqtgraph's name
        bounds = self.itemRect()
        self.setMinimumWidth(0)
        self.setMinimumHeight(bounds.height())
        self._sizeHint = {
            Qt.SizeHint.MinimumSize: (0, bounds.height()),
            Qt.SizeHint.PreferredSize: (0, bounds.height()),
            Qt.SizeHint.MaximumSize: (-1, -1),
            Qt.SizeHint.MinimumDescent: (0, 0),
        }
        self.updateGeometry()


class CinePanel(QWidget):
    """PSNR per frame (current iteration) beside the x-t profiles of every pane along a row."""

    rowChanged = pyqtSignal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("cinePanel")
        outer = QHBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split)
        self.frame_plot = pg.PlotWidget()
        self.frame_plot.setObjectName("framePsnr")
        self.frame_plot.setLabel("bottom", "frame")
        self.frame_plot.setLabel("left", "PSNR (dB)")
        self.frame_plot.setTitle("PSNR per frame (shown iteration)", size="9pt")
        self.frame_plot.showGrid(x=True, y=True, alpha=0.3)
        self.frame_plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.frame_marker = pg.InfiniteLine(
            pos=0, angle=90, movable=False, pen=pg.mkPen("#dddd55", style=Qt.PenStyle.DashLine)
        )
        self.frame_plot.addItem(self.frame_marker, ignoreBounds=True)
        self.frame_curves: dict[str, pg.PlotDataItem] = {}
        split.addWidget(self.frame_plot)
        right = QWidget()
        col = QVBoxLayout(right)
        col.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("x-t profile along row"))
        self.row_spin = QSpinBox()
        self.row_spin.setObjectName("profileRow")
        self.row_spin.setToolTip("image row of the temporal profile (or click the reference pane)")
        self.row_spin.valueChanged.connect(self.rowChanged.emit)
        top.addWidget(self.row_spin)
        top.addStretch(1)
        col.addLayout(top)
        self.profiles = pg.GraphicsLayoutWidget()
        self.profiles.setObjectName("profiles")
        col.addWidget(self.profiles, 1)
        split.addWidget(right)
        split.setSizes([300, 500])
        self.profile_items: dict[str, tuple[pg.LabelItem, pg.ImageItem]] = {}
        self.profile_data: dict[str, np.ndarray] = {}

    def set_rows(self, rows: int, current: int) -> None:
        self.row_spin.blockSignals(True)
        self.row_spin.setRange(0, max(0, rows - 1))
        self.row_spin.setValue(current)
        self.row_spin.blockSignals(False)

    def set_frame_curves(self, curves: dict[str, tuple[str, str, list[float]]]) -> None:
        """``key -> (label, colour, PSNR per frame)``; curves of other keys are removed."""
        for key in [k for k in self.frame_curves if k not in curves]:
            self.frame_plot.removeItem(self.frame_curves.pop(key))
        for key, (label, color, values) in curves.items():
            item = self.frame_curves.get(key)
            if item is None:
                item = self.frame_plot.plot(
                    [], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=4, name=label
                )
                item.setSymbolBrush(color)
                self.frame_curves[key] = item
            item.setData(np.arange(len(values)), np.asarray(values, dtype=float))
        self._leave_room_for_the_legend(curves)

    #: height of one legend row in pixels (8-pt labels), and the plot height assumed before the
    #: widget is laid out
    LEGEND_ROW_PIXELS = 26
    _ASSUMED_PLOT_PIXELS = 200

    def _leave_room_for_the_legend(self, curves: dict[str, tuple[str, str, list[float]]]) -> None:
        """Set the y range so that the curves stay below the legend in the top right corner
        (it used to sit on top of them): headroom above the highest PSNR for the legend rows."""
        values = np.concatenate(
            [np.asarray(v, dtype=float).ravel() for _, _, v in curves.values()] or [np.zeros(0)]
        )
        values = values[np.isfinite(values)]
        if values.size == 0:
            self.frame_plot.enableAutoRange(axis="y")
            return
        lo, hi = float(values.min()), float(values.max())
        span = max(hi - lo, 0.5)
        plot_pixels = self.frame_plot.getViewBox().height()
        if not plot_pixels or plot_pixels < 60:
            plot_pixels = self._ASSUMED_PLOT_PIXELS
        legend = min(0.7, (len(curves) * self.LEGEND_ROW_PIXELS + 16) / plot_pixels)
        top = hi + 0.05 * span + (span * 1.1) * legend / (1.0 - legend)
        self.frame_plot.setYRange(lo - 0.05 * span, top, padding=0.0)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self.frame_curves:  # the headroom depends on the plot's height in pixels
            curves = {
                key: ("", "", item.getData()[1] if item.getData()[1] is not None else [])
                for key, item in self.frame_curves.items()
            }
            self._leave_room_for_the_legend(curves)

    def set_frame(self, frame: int) -> None:
        self.frame_marker.setValue(frame)

    def set_profiles(
        self, profiles: dict[str, tuple[str, np.ndarray]], levels: tuple[float, float]
    ) -> None:
        """``key -> (title, (T, w) x-t image)``, side by side with one window/level."""
        if list(self.profile_items) != list(profiles):
            self.profiles.clear()
            self.profile_items = {}
            layout = self.profiles.ci.layout
            for i, (key, (title, _)) in enumerate(profiles.items()):
                label = _StripTitle(title, size="8pt")
                self.profiles.addItem(label, row=0, col=i)
                layout.setColumnStretchFactor(i, 1)
                layout.setColumnPreferredWidth(i, 1)
                view = self.profiles.addViewBox(row=1, col=i, enableMenu=False)
                view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
                view.invertY(True)
                view.setDefaultPadding(0.0)
                image = pg.ImageItem(axisOrder="row-major")
                view.addItem(image)
                self.profile_items[key] = (label, image)
        self.profile_data = {}
        for key, (title, data) in profiles.items():
            label, image = self.profile_items[key]
            label.setText(title, size="8pt")
            label.setToolTip(title)
            image.setImage(data, autoLevels=False, levels=levels)
            image.getViewBox().autoRange(padding=0.0)
            self.profile_data[key] = data
