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
        self.frame_plot.addLegend(offset=(-5, -5), labelTextSize="8pt")
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

    def set_frame(self, frame: int) -> None:
        self.frame_marker.setValue(frame)

    def set_profiles(
        self, profiles: dict[str, tuple[str, np.ndarray]], levels: tuple[float, float]
    ) -> None:
        """``key -> (title, (T, w) x-t image)``, side by side with one window/level."""
        if list(self.profile_items) != list(profiles):
            self.profiles.clear()
            self.profile_items = {}
            for i, (key, (title, _)) in enumerate(profiles.items()):
                label = self.profiles.addLabel(title, row=0, col=i, size="8pt")
                view = self.profiles.addViewBox(row=1, col=i, enableMenu=False)
                view.invertY(True)
                view.setDefaultPadding(0.0)
                image = pg.ImageItem(axisOrder="row-major")
                view.addItem(image)
                self.profile_items[key] = (label, image)
        self.profile_data = {}
        for key, (title, data) in profiles.items():
            label, image = self.profile_items[key]
            label.setText(title, size="8pt")
            image.setImage(data, autoLevels=False, levels=levels)
            image.getViewBox().autoRange(padding=0.0)
            self.profile_data[key] = data
