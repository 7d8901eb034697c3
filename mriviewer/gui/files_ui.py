"""Opening files: k-space files and slices (through the session), recent files, drag and drop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QFileDialog

from mriviewer import __version__
from mriviewer.core.errors import MriViewerError
from mriviewer.core.session import REFERENCE
from mriviewer.gui.widgets.kspace_view import log_magnitude

MAX_RECENT = 8


class FilesMixin:
    """k-space files, slices, recent files and drops of the main window."""

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
        if not self._probe_read("Cannot open file", path, slice_index):
            return False
        self.controller.stop()
        try:
            self.session.open(path, slice_index, encoding=encoding, prewhiten=prewhiten)
        except MriViewerError as exc:
            self.show_error("Cannot open file", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - never crash on a user's file
            self.show_error("Cannot open file", f"{path}: {type(exc).__name__}: {exc}")
            return False
        volume = self.volume
        summary = volume.summary() | {"sampling": self.sampling.to_dict()}
        self.data_panel.set_volume_info(
            summary, volume.num_slices, volume.num_coils, volume.slice_index
        )
        self._slice_loaded()
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

    def load_slice(self, index: int) -> bool:
        if self.volume is None:
            return False
        if index == self.volume.slice_index and self.kspace is not None:
            return True
        if not self._probe_read("Cannot read slice", self.volume.path, index):
            self.data_panel.set_slice(self.volume.slice_index)  # back to the slice shown
            return False
        self.controller.stop()
        try:
            self.session.select_slice(index)
        except MriViewerError as exc:
            self.show_error("Cannot read slice", str(exc))
            self.data_panel.set_slice(self.volume.slice_index)
            return False
        self.data_panel.set_slice(index)
        self._slice_loaded()
        return True

    def _slice_loaded(self) -> None:
        """Present the session's new slice: mask, k-space, an empty grid, the right measures."""
        # no ground truth, no convention to choose: the selectors say so by being disabled
        for widget in (self.reference_combo, self.region_combo):
            widget.setEnabled(self.ground_truth)
        self.table.set_ground_truth(self.ground_truth)
        self.curves.set_ground_truth(self.ground_truth)
        self.curves.clear_curves()
        self._curve_counts.clear()
        self.iter_slider.setRange(0, 0)
        if not self.sampling.fully_sampled:
            # an accelerated scan: its own sampling is the mask unless the user asks for more
            self.mask_panel.set_kind("data", emit=False)
            self.regenerate_mask()
        elif (
            self.mask is None
            or self.mask.shape != self.kspace.shape[-2:]
            or self.mask_panel.kind() == "data"
        ):
            if self.mask_panel.kind() in ("array", "data"):
                self.mask_panel.set_kind("random", emit=False)
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
