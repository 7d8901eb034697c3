"""The mask panel and the k-space view, wired to the session's mask (drawn, loaded, edited)."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtWidgets import QFileDialog

from mriviewer.core.errors import MriViewerError


class MaskMixin:
    """Mask settings, drawing and files of :class:`mriviewer.gui.main_window.MainWindow`."""

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

    def mask_spec_dict(self) -> dict:
        """The panel's settings as a JSON-ready dict (kind ``data``: the data's own sampling)."""
        if self.mask_panel.kind() == "data":
            return {"kind": "data"}
        return self.mask_spec().to_dict()

    def regenerate_mask(self) -> None:
        """Draw the mask from the panel's settings (user-drawn masks are kept as they are)."""
        if self.kspace is None or self.mask_panel.kind() == "array":
            self._mask_changed()
            return
        try:
            if self.mask_panel.kind() == "data":
                self.session.use_data_sampling()
            else:
                self.session.make_mask(self.mask_spec())
        except MriViewerError as exc:
            self.mask_panel.set_problem(str(exc))
            self.show_error("Cannot draw mask", str(exc))
            return
        self._mask_changed()

    def _mask_changed(self) -> None:
        if self.mask is None:
            return
        self.session.mask_kind = self.mask_panel.kind()
        achieved, sampled, total = self.session.achieved()
        self.mask_panel.set_achieved(achieved, sampled, total, self.session.mask_note())
        self.kspace_view.set_mask(self.session.effective_mask())
        self.kspace_view.set_acs(self.session.acs_band())

    def set_acs_band(self, c0: int, c1: int) -> None:
        """Make columns ``[c0, c1)`` the fully sampled centre of a 1-D mask (mask becomes
        user-drawn); the columns of the previous band outside the new one are dropped."""
        if self.session.set_acs_band(c0, c1):
            self.mask_panel.set_kind("array", emit=False)
            self._mask_changed()

    def set_mask_array(self, array, source_file: str | None = None) -> None:
        """Use a drawn or loaded ``(H, W)`` mask (type becomes user-drawn)."""
        self.session.set_mask_array(array, source_file)
        self.mask_panel.set_kind("array", emit=False)
        self._mask_changed()

    def edit_mask(self, row: int, col: int, finished: bool = True) -> None:
        """Add or remove a line (1-D masks) or a point (2-D masks) at (row, col)."""
        mode = self.kspace_view.view.edit_mode
        if self.mask is None or mode == "off":
            return
        try:
            changed = self.session.edit_mask(row, col, add=mode == "add")
        except MriViewerError as exc:
            self.statusBar().showMessage(str(exc), 4000)
            return
        if changed:
            self.mask_panel.set_kind("array", emit=False)
            self._mask_changed()

    def save_mask_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save mask", "mask.npy", "NumPy (*.npy)")
        if path:
            self.save_mask(path)

    def save_mask(self, path: str | Path) -> bool:
        try:
            self.session.save_mask(path)
        except (OSError, MriViewerError) as exc:
            self.show_error("Cannot save mask", f"{path}: {exc}")
            return False
        return True

    def load_mask_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load mask", "", "NumPy (*.npy)")
        if path:
            self.load_mask(path)

    def load_mask(self, path: str | Path) -> bool:
        try:
            self.session.load_mask(path)
        except MriViewerError as exc:
            self.show_error("Cannot load mask", str(exc))
            return False
        self.mask_panel.set_kind("array", emit=False)
        self._mask_changed()
        return True
