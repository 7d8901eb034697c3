"""k-space log magnitude with the sampling mask drawn over it; click or drag to edit the mask."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, pyqtSignal

EDIT_MODES = ("off", "add", "remove")


class MaskEditViewBox(pg.ViewBox):
    """A ViewBox that turns left clicks/drags into mask edits while an edit mode is active."""

    sigEdit = pyqtSignal(float, float, bool)  # x, y, drag finished

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True)
        self.edit_mode = "off"

    def mouseClickEvent(self, ev) -> None:
        if self.edit_mode != "off" and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            pos = self.mapSceneToView(ev.scenePos())
            self.sigEdit.emit(pos.x(), pos.y(), True)
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if self.edit_mode != "off" and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            pos = self.mapSceneToView(ev.scenePos())
            self.sigEdit.emit(pos.x(), pos.y(), bool(ev.isFinish()))
            return
        super().mouseDragEvent(ev, axis)


def log_magnitude(kspace: np.ndarray, coil: int | None) -> np.ndarray:
    """``log10(1 + |k|)`` of one coil, or of the RSS over coils when ``coil`` is None."""
    if coil is None:
        mag = np.sqrt((np.abs(kspace) ** 2).sum(0))
    else:
        mag = np.abs(kspace[coil])
    scale = float(np.percentile(mag, 99)) or 1.0
    return np.log10(1.0 + 100.0 * mag / scale).astype(np.float32)


class KSpaceView(pg.GraphicsLayoutWidget):
    """Shows ``log |k|`` and the mask overlay (sampled points tinted)."""

    sigEdit = pyqtSignal(int, int, bool)  # row, col, finished
    sigAcsChanged = pyqtSignal(int, int)  # first column, end column (exclusive)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("kspaceView")
        self.view = MaskEditViewBox()
        self.addItem(self.view)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(10)
        self.view.addItem(self.image)
        self.view.addItem(self.overlay)
        self.view.sigEdit.connect(self._on_edit)
        self.overlay_opacity = 0.35
        # draggable ACS band (1-D masks): the fully sampled centre columns
        self.acs_band = pg.LinearRegionItem(
            orientation="vertical",
            brush=pg.mkBrush(255, 200, 0, 40),
            pen=pg.mkPen(255, 200, 0, 200),
            swapMode="sort",
        )
        self.acs_band.setZValue(20)
        self.acs_band.setToolTip("ACS band: drag or resize to change the fully sampled centre")
        self.acs_band.hide()
        self.view.addItem(self.acs_band)
        self.acs_band.sigRegionChangeFinished.connect(self._acs_moved)
        self._acs_guard = False
        self.shape: tuple[int, int] | None = None

    def set_kspace(self, logmag: np.ndarray) -> None:
        first = self.shape != logmag.shape
        self.shape = logmag.shape
        self.image.setImage(logmag, autoLevels=True)
        if first:
            self.view.autoRange(padding=0.0)

    def set_mask(self, mask: np.ndarray | None) -> None:
        if mask is None:
            self.overlay.clear()
            return
        rgba = np.zeros(mask.shape + (4,), dtype=np.ubyte)
        rgba[mask] = (40, 200, 255, int(255 * self.overlay_opacity))
        rgba[~mask] = (0, 0, 0, 150)
        self.overlay.setImage(rgba, autoLevels=False)

    def set_acs(self, band: tuple[int, int] | None) -> None:
        """Show the ACS band over columns ``[c0, c1)`` (None hides it)."""
        if band is None:
            self.acs_band.hide()
            return
        self._acs_guard = True
        try:
            self.acs_band.setRegion((float(band[0]), float(band[1])))
        finally:
            self._acs_guard = False
        self.acs_band.show()

    def _acs_moved(self, *_args) -> None:
        if self._acs_guard or self.shape is None:
            return
        lo, hi = self.acs_band.getRegion()
        c0 = int(np.clip(round(lo), 0, self.shape[1] - 1))
        c1 = int(np.clip(round(hi), c0 + 1, self.shape[1]))
        self.sigAcsChanged.emit(c0, c1)

    def set_edit_mode(self, mode: str) -> None:
        if mode not in EDIT_MODES:
            raise ValueError(f"edit mode must be one of {EDIT_MODES}")
        self.view.edit_mode = mode
        self.view.setMouseEnabled(mode == "off", mode == "off")

    def _on_edit(self, x: float, y: float, finished: bool) -> None:
        if self.shape is None:
            return
        row, col = int(np.floor(y)), int(np.floor(x))
        if 0 <= row < self.shape[0] and 0 <= col < self.shape[1]:
            self.sigEdit.emit(row, col, finished)
