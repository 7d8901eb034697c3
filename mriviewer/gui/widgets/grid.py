"""Comparison grid: the reference plus one pane per method, linked zoom/pan, one shared
window/level with a colour bar, optional error maps with their own colour bar, and a mirrored ROI.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtWidgets import QGridLayout, QWidget

DISPLAY_MODES = ("magnitude", "phase", "real", "imag", "log")
IMAGE_CMAP = "gray"  # matplotlib name; CET-L1 is the same linear grey in pyqtgraph
ERROR_CMAP = "inferno"
_PG_CMAPS = {"gray": "CET-L1", "inferno": "inferno"}
SPARE_BUILD_MS = 30  # idle spacing between building two spare panes


def display_array(image: np.ndarray, mode: str) -> np.ndarray:
    """Real ``(h, w)`` float32 view of a complex (or magnitude) image for ``mode``."""
    img = np.asarray(image)
    if mode == "magnitude":
        out = np.abs(img)
    elif mode == "phase":
        out = np.angle(img) if np.iscomplexobj(img) else np.zeros(img.shape)
    elif mode == "real":
        out = img.real
    elif mode == "imag":
        out = img.imag if np.iscomplexobj(img) else np.zeros(img.shape)
    elif mode == "log":
        out = np.log10(np.abs(img) + 1e-6 * (float(np.abs(img).max()) or 1.0))
    else:
        raise ValueError(f"unknown display mode {mode!r}; choose one of {DISPLAY_MODES}")
    return np.ascontiguousarray(out, dtype=np.float32)


def default_levels(reference: np.ndarray, mode: str) -> tuple[float, float]:
    """Window/level from the reference: 1st-99th percentile (symmetric for real/imag)."""
    if mode == "phase":
        return (-math.pi, math.pi)
    ref = display_array(reference, "magnitude" if mode in ("real", "imag") else mode)
    lo, hi = (float(v) for v in np.percentile(ref, [1, 99]))
    if mode in ("real", "imag"):
        lo, hi = -hi, hi
    if not hi > lo:
        hi = lo + 1.0
    return (lo, hi)


def error_array(pred: np.ndarray, ref: np.ndarray, mode: str) -> np.ndarray:
    """``|display(pred) - display(ref)|`` (phase difference wrapped to [-pi, pi])."""
    diff = display_array(pred, mode) - display_array(ref, mode)
    if mode == "phase":
        diff = np.angle(np.exp(1j * diff))
    return np.abs(diff).astype(np.float32)


def _image_view() -> tuple[pg.GraphicsLayoutWidget, pg.LabelItem, pg.ViewBox, pg.ImageItem]:
    """A light image view: a title label over a menu-less, aspect-locked ViewBox.

    (A PlotWidget would also build four axes and its context menus: several times the
    construction time, paid on the UI thread whenever a run adds panes.)"""
    widget = pg.GraphicsLayoutWidget()
    widget.setMinimumSize(60, 60)
    widget.ci.layout.setContentsMargins(2, 2, 2, 2)
    label = widget.addLabel("", row=0, col=0, size="9pt")
    view = widget.addViewBox(row=1, col=0, enableMenu=False)
    view.setAspectLocked(True)
    view.setDefaultPadding(0.0)
    view.invertY(True)
    image = pg.ImageItem(axisOrder="row-major")
    view.addItem(image)
    return widget, label, view, image


class Pane:
    """One titled image and its error map (|pred - ref|), the latter built on first use."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.widget, self.label, self.view, self.image = _image_view()
        self._error_parts: tuple | None = None
        self.data: np.ndarray | None = None
        self.error: np.ndarray | None = None
        self.title = name
        self.roi: pg.RectROI | None = None

    @property
    def has_error_view(self) -> bool:
        return self._error_parts is not None

    def _error(self) -> tuple:
        if self._error_parts is None:
            widget, _label, view, image = _image_view()
            widget.ci.removeItem(_label)  # the error map sits under its titled pane
            self._error_parts = (widget, view, image)
        return self._error_parts

    @property
    def error_widget(self) -> pg.GraphicsLayoutWidget:
        return self._error()[0]

    @property
    def error_view(self) -> pg.ViewBox:
        return self._error()[1]

    @property
    def error_image(self) -> pg.ImageItem:
        return self._error()[2]

    def widgets(self) -> list[QWidget]:
        """The widgets built so far (pane, and error map if any)."""
        return [self.widget] + ([self._error_parts[0]] if self._error_parts else [])

    def set_title(self, text: str) -> None:
        self.title = text
        if "<br>" in text:  # centre each line: a one-column table sizes itself to its text
            rows = "".join(
                f"<tr><td align='center'>{line}</td></tr>" for line in text.split("<br>")
            )
            text = f"<table cellspacing='0' cellpadding='0'>{rows}</table>"
        self.label.setText(text, size="9pt")


class ComparisonGrid(QWidget):
    """Reference + method panes sharing zoom/pan, levels and an ROI."""

    levelsChanged = pyqtSignal(float, float)
    roiChanged = pyqtSignal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("comparisonGrid")
        self.layout_ = QGridLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(2)
        self.bar_widget = pg.GraphicsLayoutWidget()
        self.bar_widget.setFixedWidth(80)
        self.error_bar_widget = pg.GraphicsLayoutWidget()
        self.error_bar_widget.setFixedWidth(80)
        self.panes: dict[str, Pane] = {}
        self._spares: list[Pane] = []
        self._spare_target = 0
        self._spare_timer = QTimer(self)
        self._spare_timer.setSingleShot(True)
        self._spare_timer.setInterval(SPARE_BUILD_MS)
        self._spare_timer.timeout.connect(self._build_spare)
        self._levels = (0.0, 1.0)
        self._error_levels = (0.0, 0.1)
        self.error_visible = False
        self.roi_visible = False
        self._roi_state: dict | None = None
        self._roi_guard = False
        self._sync_guard = False
        self._user_zoomed = False
        self.colorbar = pg.ColorBarItem(
            values=self._levels,
            colorMap=pg.colormap.get(_PG_CMAPS[IMAGE_CMAP]),
            width=14,
            interactive=True,
            rounding=1e-6,
            colorMapMenu=False,
        )
        self.colorbar.sigLevelsChanged.connect(self._on_bar_levels)
        self.error_bar = pg.ColorBarItem(
            values=self._error_levels,
            colorMap=pg.colormap.get(_PG_CMAPS[ERROR_CMAP]),
            width=14,
            interactive=True,
            rounding=1e-6,
            colorMapMenu=False,
        )
        self.error_bar.sigLevelsChanged.connect(self._on_error_bar_levels)
        self.bar_widget.addItem(self.colorbar)
        self.error_bar_widget.addItem(self.error_bar)

    # ----- layout -------------------------------------------------------------------------
    def set_panes(self, names: list[str], fresh: dict[str, str] | None = None) -> None:
        """Lay out panes with these names (first is the reference), reusing existing panes
        (their image, title and ROI) and keeping the view. Panes named in ``fresh`` start
        empty with the given title (set before they are shown: one layout, one paint)."""
        fresh = fresh or {}
        view_range = self.view_range() if self.panes and self._user_zoomed else None
        old = self.panes
        self._clear_layout(delete=[p for n, p in old.items() if n not in names])
        self.panes = {}
        for name in names:
            pane = old.get(name)
            if pane is None:  # spares are empty already
                pane = self._take_spare(name, fresh.get(name))
            elif name in fresh:
                self.panes[name] = pane
                self.clear_pane(name, fresh[name])
            self.panes[name] = pane
        self._relayout()
        self.colorbar.setImageItem([p.image for p in self.panes.values()])
        self._link_error_bar()
        self.set_levels(*self._levels)
        self.set_error_levels(*self._error_levels)
        if self.roi_visible:
            self._install_rois()
        if view_range is not None:
            self.set_view_range(view_range)
        else:  # re-fit every pane once the new layout has its sizes
            QTimer.singleShot(0, self._refit)

    def _refit(self) -> None:
        if not self._user_zoomed:
            self.reset_view()

    def clear_pane(self, name: str, title: str | None = None) -> None:
        """Forget a pane's image (e.g. when a new run starts)."""
        pane = self.panes[name]
        pane.data = None
        pane.error = None
        pane.image.clear()
        if pane.has_error_view:
            pane.error_image.clear()
        if title is not None:
            pane.set_title(title)

    # ----- spare panes: built in idle time so that starting a run does not build views -----
    def keep_spare_panes(self, count: int) -> None:
        """Keep ``count`` unused panes ready, building the missing ones (and their error maps
        while those are shown) one view per event-loop turn while the UI is idle, so that a
        run adding panes only has to lay them out."""
        self._spare_target = max(0, int(count))
        self._schedule_spares()

    def spare_count(self) -> int:
        return len(self._spares)

    def _spare_work(self) -> Pane | bool:
        """The spare that needs an error map, True if a spare is missing, else False."""
        if self.error_visible:
            for pane in self._spares:
                if not pane.has_error_view:
                    return pane
        return len(self._spares) < self._spare_target

    def _schedule_spares(self) -> None:
        if self._spare_work() is not False and not self._spare_timer.isActive():
            self._spare_timer.start()

    def _build_spare(self) -> None:
        work = self._spare_work()
        if isinstance(work, Pane):
            self._ensure_error_view(work)
        elif work:
            self._spares.append(self._new_pane(""))
        self._schedule_spares()

    def _new_pane(self, name: str) -> Pane:
        pane = Pane(name)
        pane.view.sigRangeChangedManually.connect(lambda *_a, v=pane.view: self.sync_views(v))
        return pane

    def _take_spare(self, name: str, title: str | None = None) -> Pane:
        pane = self._spares.pop() if self._spares else self._new_pane(name)
        pane.name = name
        pane.set_title(title or name)
        self._schedule_spares()
        return pane

    def _clear_layout(self, delete: list[Pane]) -> None:
        for pane in self.panes.values():  # panes that stay are not hidden (no re-show cost)
            for widget in pane.widgets():
                self.layout_.removeWidget(widget)
        for pane in delete:  # back to the spares (cleared), or deleted beyond what is kept
            for widget in pane.widgets():
                widget.hide()
            pane.data = pane.error = None
            pane.image.clear()
            if pane.has_error_view:
                pane.error_image.clear()
            if pane.roi is not None:
                pane.view.removeItem(pane.roi)
                pane.roi = None
            if len(self._spares) < self._spare_target:
                self._spares.append(pane)
                continue
            for widget in pane.widgets():
                widget.setParent(None)
                widget.deleteLater()
        for widget in (self.bar_widget, self.error_bar_widget):
            self.layout_.removeWidget(widget)
        for i in range(self.layout_.columnCount()):
            self.layout_.setColumnStretch(i, 0)
        for i in range(self.layout_.rowCount()):
            self.layout_.setRowStretch(i, 0)

    def _relayout(self) -> None:
        """Panes in equal columns (at most 4 per row), colour bar(s) in the last column."""
        n = len(self.panes)
        if n == 0:
            return
        ncols = n if n <= 4 else math.ceil(n / math.ceil(n / 4))
        rows_per = 2 if self.error_visible else 1
        for i, pane in enumerate(self.panes.values()):
            r, c = divmod(i, ncols)
            self.layout_.addWidget(pane.widget, r * rows_per, c)
            pane.widget.show()
            if self.error_visible and i > 0:  # the reference has no error map
                self._ensure_error_view(pane)
                self.layout_.addWidget(pane.error_widget, r * rows_per + 1, c)
                pane.error_widget.show()
            elif pane.has_error_view:
                pane.error_widget.hide()
        nrows = math.ceil(n / ncols) * rows_per
        for c in range(ncols):
            self.layout_.setColumnStretch(c, 1)
        for r in range(nrows):
            self.layout_.setRowStretch(r, 1)
        self.layout_.addWidget(self.bar_widget, 0, ncols, 1 if self.error_visible else nrows, 1)
        self.bar_widget.show()
        if self.error_visible:
            self.layout_.addWidget(self.error_bar_widget, 1, ncols, 1, 1)
            self.error_bar_widget.show()
        else:
            self.error_bar_widget.hide()
        # settle the geometry now: otherwise the grid paints once with the old sizes and again
        # after the posted layout request
        self.layout_.activate()

    def _ensure_error_view(self, pane: Pane) -> None:
        """Build ``pane``'s error map on first use: linked zoom, error levels, colour bar."""
        if pane.has_error_view:
            return
        view = pane.error_view
        view.sigRangeChangedManually.connect(lambda *_a, v=view: self.sync_views(v))
        pane.error_image.setLevels(self._error_levels)
        if pane.name in self.panes:
            self._link_error_bar()

    def _link_error_bar(self) -> None:
        self.error_bar.setImageItem(
            [p.error_image for p in self.panes.values() if p.has_error_view]
        )

    def set_error_visible(self, visible: bool) -> None:
        """Show or hide the error maps (|pred - ref|) under each pane."""
        if visible == self.error_visible:
            return
        self.error_visible = visible
        self.set_panes(list(self.panes))
        self._schedule_spares()

    # ----- images and levels --------------------------------------------------------------
    def set_image(
        self, name: str, data: np.ndarray, title: str | None = None, error: np.ndarray | None = None
    ) -> None:
        pane = self.panes[name]
        first = pane.data is None
        pane.data = data
        pane.image.setImage(data, autoLevels=False, levels=self._levels)
        pane.error = error
        if error is not None:
            self._ensure_error_view(pane)
            pane.error_image.setImage(error, autoLevels=False, levels=self._error_levels)
        elif pane.has_error_view:
            pane.error_image.clear()
        if title is not None:
            pane.set_title(title)
        if first and not self._user_zoomed:
            pane.view.enableAutoRange(pg.ViewBox.XYAxes, True)
            if pane.has_error_view:
                pane.error_view.enableAutoRange(pg.ViewBox.XYAxes, True)

    def levels(self) -> tuple[float, float]:
        return self._levels

    def set_levels(self, lo: float, hi: float) -> None:
        """One window/level for every pane (and the colour bar)."""
        if not hi > lo:
            hi = lo + 1e-6
        self._levels = (float(lo), float(hi))
        self.colorbar.setLevels(self._levels)
        for pane in self.panes.values():
            pane.image.setLevels(self._levels)
        self.levelsChanged.emit(*self._levels)

    def error_levels(self) -> tuple[float, float]:
        return self._error_levels

    def set_error_levels(self, lo: float, hi: float) -> None:
        if not hi > lo:
            hi = lo + 1e-6
        self._error_levels = (float(lo), float(hi))
        self.error_bar.setLevels(self._error_levels)
        for pane in self.panes.values():
            if pane.has_error_view:
                pane.error_image.setLevels(self._error_levels)

    def _on_bar_levels(self, bar) -> None:
        lo, hi = bar.levels()
        if (lo, hi) != self._levels:
            self._levels = (float(lo), float(hi))
            self.levelsChanged.emit(*self._levels)

    def _on_error_bar_levels(self, bar) -> None:
        self._error_levels = tuple(float(v) for v in bar.levels())

    # ----- view state ---------------------------------------------------------------------
    def views(self) -> list[pg.ViewBox]:
        """Every image ViewBox (panes, then the error maps built so far)."""
        panes = list(self.panes.values())
        return [p.view for p in panes] + [p.error_view for p in panes if p.has_error_view]

    def sync_views(self, source: pg.ViewBox) -> None:
        """Linked zoom/pan: give every view the source's centre and scale (units per pixel).

        (Linking aspect-locked views axis by axis feeds back when the panes differ in size,
        so the views are linked by centre and scale instead.)"""
        if self._sync_guard:
            return
        self._user_zoomed = True
        (x0, x1), (y0, y1) = source.viewRange()
        width = max(source.width(), 1.0)
        upp = (x1 - x0) / width
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        self._sync_guard = True
        try:
            for view in self.views():
                if view is source:
                    continue
                w, h = max(view.width(), 1.0), max(view.height(), 1.0)
                view.setRange(
                    xRange=(cx - upp * w / 2, cx + upp * w / 2),
                    yRange=(cy - upp * h / 2, cy + upp * h / 2),
                    padding=0.0,
                )
        finally:
            self._sync_guard = False

    def view_range(self) -> list[list[float]] | None:
        first = next(iter(self.panes.values()), None)
        if first is None:
            return None
        return [list(map(float, r)) for r in first.view.viewRange()]

    def set_view_range(self, rng: list[list[float]]) -> None:
        """Show this ``[[x0, x1], [y0, y1]]`` region in the first pane and the same in the others."""
        first = next(iter(self.panes.values()), None)
        if first is not None and rng:
            first.view.setRange(xRange=rng[0], yRange=rng[1], padding=0.0)
            self.sync_views(first.view)

    def reset_view(self) -> None:
        """Fit the image in every pane again (auto range until the user zooms or pans)."""
        self._user_zoomed = False
        for view in self.views():
            view.enableAutoRange(pg.ViewBox.XYAxes, True)

    # ----- ROI ----------------------------------------------------------------------------
    def set_roi_visible(self, visible: bool) -> None:
        self.roi_visible = visible
        if visible:
            self._install_rois()
        else:
            for pane in self.panes.values():
                if pane.roi is not None:
                    pane.view.removeItem(pane.roi)
                    pane.roi = None
        self.roiChanged.emit()

    def roi_state(self) -> dict | None:
        return self._roi_state if self.roi_visible else None

    def set_roi_state(self, state: dict) -> None:
        """Place the ROI (``{"pos": [x, y], "size": [w, h]}``) in every pane."""
        self._roi_state = {"pos": list(state["pos"]), "size": list(state["size"])}
        if not self.roi_visible:
            self.set_roi_visible(True)
        else:
            self._apply_roi_state(None)
            self.roiChanged.emit()

    def _install_rois(self) -> None:
        ref = next(iter(self.panes.values()), None)
        if ref is None:
            return
        if self._roi_state is None:
            h, w = ref.data.shape if ref.data is not None else (64, 64)
            self._roi_state = {"pos": [w * 0.375, h * 0.375], "size": [w / 4, h / 4]}
        for pane in self.panes.values():
            if pane.roi is None:
                roi = pg.RectROI(
                    self._roi_state["pos"], self._roi_state["size"], pen=pg.mkPen("y", width=2)
                )
                roi.sigRegionChanged.connect(self._on_roi_moved)
                pane.view.addItem(roi)
                pane.roi = roi
        self._apply_roi_state(None)

    def _on_roi_moved(self, roi) -> None:
        if self._roi_guard:
            return
        self._roi_state = {
            "pos": [float(roi.pos().x()), float(roi.pos().y())],
            "size": [float(roi.size().x()), float(roi.size().y())],
        }
        self._apply_roi_state(roi)
        self.roiChanged.emit()

    def _apply_roi_state(self, source) -> None:
        self._roi_guard = True
        try:
            for pane in self.panes.values():
                if pane.roi is not None and pane.roi is not source:
                    pane.roi.setPos(self._roi_state["pos"], update=False)
                    pane.roi.setSize(self._roi_state["size"])
        finally:
            self._roi_guard = False

    def roi_stats(self) -> dict[str, tuple[float, float]]:
        """Mean and standard deviation of the displayed values inside the ROI, per pane."""
        if not self.roi_visible or self._roi_state is None:
            return {}
        x, y = self._roi_state["pos"]
        w, h = self._roi_state["size"]
        out = {}
        for name, pane in self.panes.items():
            if pane.data is None:
                continue
            rows, cols = pane.data.shape
            r0, r1 = max(0, int(round(y))), min(rows, int(round(y + h)))
            c0, c1 = max(0, int(round(x))), min(cols, int(round(x + w)))
            region = pane.data[r0:r1, c0:c1]
            if region.size:
                out[name] = (float(region.mean()), float(region.std()))
        return out
