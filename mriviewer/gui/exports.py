"""File > Export and sessions: dialogs of the main window around the session's exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt6.QtWidgets import QFileDialog

from mriviewer.core.errors import MriViewerError
from mriviewer.core.session_file import SessionState, load_session, save_session
from mriviewer.gui.widgets.grid import DISPLAY_MODES


class ExportMixin:
    """Figure, metrics, reconstructions and session files of the main window."""

    def view_state(self) -> dict[str, Any]:
        """What only the window knows, for provenance: device, display, levels, iteration."""
        return {
            "device": self.methods_panel.device_combo.currentText(),
            "display": self.display_mode,
            "levels": list(self.grid.levels()),
            "error_levels": list(self.grid.error_levels()) if self.grid.error_visible else None,
            "iteration": self.iter_slider.value(),
        }

    def provenance(self, out_path: Path | None = None) -> dict[str, Any]:
        """Everything needed to redo the comparison (file + hash, slice, mask, methods, levels)."""
        return self.session.provenance(self.view_state(), out_path)

    def metric_rows(self) -> list[dict[str, Any]]:
        return self.session.metric_rows()

    def _ask_save(self, title: str, default: str, filters: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, default, filters)
        return path

    def export_figure_dialog(self) -> None:
        path = self._ask_save(
            "Export figure", "figure.pdf", "PDF (*.pdf);;PNG (*.png);;SVG (*.svg)"
        )
        if path:
            self.export_figure(path)

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

    def export_metrics(self, path: str | Path) -> bool:
        try:
            self.session.export_metrics(path, self.view_state())
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
        """Final images of every method: see
        :meth:`mriviewer.core.session.ComparisonSession.export_recons` (.h5, .npy, DICOM, NIfTI)."""
        try:
            notes = self.session.export_recons(path, self.view_state())
        except (MriViewerError, OSError) as exc:
            self.show_error("Cannot export reconstructions", str(exc))
            return False
        self.statusBar().showMessage("; ".join(notes), 10000)
        return True

    def session_state(self, session_path: Path | None = None) -> SessionState:
        self._sync_metric_choices()
        view = {
            "coil": str(self.data_panel.coil_combo.currentData() or "rss"),
            "methods": self.methods_panel.checked(),
            "device": self.methods_panel.device_combo.currentText(),
            "levels": list(self.grid.levels()),
            "error_levels": list(self.grid.error_levels()),
            "display": self.display_mode,
            "error_maps": self.grid.error_visible,
            "view_range": self.grid.view_range(),
            "iteration": self.iter_slider.value(),
            "roi": self.grid.roi_state(),
        }
        return self.session.session_state(view, self.mask_spec_dict(), session_path)

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
