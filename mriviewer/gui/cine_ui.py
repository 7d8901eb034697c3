"""The cine mode of the main window: a cine file (or ``demo-cine``) opens into a
:class:`mriviewer.core.cine_session.CineSession`; the k-t mask is drawn as a ky-t image in the
k-space view, a frame bar (slider, play/pause, fps) sits under the iteration slider and every
pane shows the current frame; the cine dock shows PSNR per frame and the x-t profiles along one
row; the comparison exports as an animated GIF or an MP4 (the figure export works on the current
frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QDockWidget, QFileDialog, QListWidgetItem

from mriviewer.core.errors import MriViewerError
from mriviewer.core.session import REFERENCE, ComparisonSession
from mriviewer.gui.methods_ui import is_cine_model, model_denoiser
from mriviewer.gui.widgets.cine_widgets import CineBar, CinePanel
from mriviewer.gui.widgets.grid import default_levels
from mriviewer.gui.widgets.kspace_view import log_magnitude

#: the cine methods and the ones checked when a cine file opens (with the zoo's ``cine-*`` models)
CINE_CHECKED = ("zero-filled", "cg-sense", "kt-l1")


class CineMixin:
    """Cine presenter of :class:`mriviewer.gui.main_window.MainWindow` (placed before the other
    mixins: it wraps their ``open_file``, ``show_iteration``, ``_mask_changed`` and
    ``_update_kspace_view`` in cine mode)."""

    # ----- layout -------------------------------------------------------------------------------
    def _build_cine_bar(self, layout) -> None:
        self.cine_bar = CineBar()
        self.cine_bar.hide()
        layout.addWidget(self.cine_bar)
        self.cine_bar.frameChanged.connect(self.set_frame)
        self.cine_bar.playToggled.connect(self.set_playing)
        self.cine_bar.fps_spin.valueChanged.connect(self._fps_changed)
        self.play_timer = QTimer(self)
        self.play_timer.setObjectName("cinePlayTimer")
        self.play_timer.timeout.connect(self._next_frame)
        self._fps_changed(self.cine_bar.fps_spin.value())
        self._profile_line = None
        self._clickable_panes: set[int] = set()

    def _build_cine_dock(self) -> None:
        self.cine_panel = CinePanel()
        self.cine_panel.rowChanged.connect(self.set_profile_row)
        dock = QDockWidget("Cine: PSNR per frame, x-t profile", self)
        dock.setObjectName("cineDock")
        dock.setWidget(self.cine_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.splitDockWidget(self.docks["metrics"], dock, Qt.Orientation.Horizontal)
        dock.hide()
        self.docks["cine"] = dock

    # ----- files --------------------------------------------------------------------------------
    def open_file(
        self,
        path: str | Path,
        slice_index: int | None = None,
        encoding: int | None = None,
        prewhiten: bool = True,
    ) -> bool:
        """Open a k-space file; a cine file (or ``demo-cine``) opens in the cine mode."""
        from mriviewer.core.io.cine import is_cine

        try:
            cine = is_cine(path)
        except Exception:  # noqa: BLE001 - the 2-D readers report what is wrong with it
            cine = False
        if cine:
            return self.open_cine(path, slice_index)
        if not self.session.is_cine:
            return super().open_file(path, slice_index, encoding, prewhiten)
        previous = self.session
        self.session = self._new_session(ComparisonSession)
        if not super().open_file(path, slice_index, encoding, prewhiten):
            self.session = previous
            return False
        self._leave_cine_mode()
        return True

    def _new_session(self, cls):
        session = cls()
        for name in ("reference_choice", "model_cards", "model_files"):
            setattr(session, name, getattr(self.session, name))
        return session

    def open_cine(self, path: str | Path, slice_index: int | None = None) -> bool:
        """Open a cine series (``demo-cine``, or a cine HDF5 / ``.npy`` file) in the cine mode;
        on failure the current case stays as it was."""
        from mriviewer import __version__
        from mriviewer.core.cine_session import CineSession
        from mriviewer.core.physics.kt_masks import DEFAULT_CINE_ACCELERATION

        self.controller.stop()
        self.set_playing(False)
        session = self._new_session(CineSession)
        try:
            session.open(path, slice_index)
        except MriViewerError as exc:
            self.show_error("Cannot open file", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - never crash on a user's file
            self.show_error("Cannot open file", f"{path}: {type(exc).__name__}: {exc}")
            return False
        entering = not self.session.is_cine
        self.session = session
        if entering:
            spec = self.mask_spec().to_dict() | {"kind": "random"}
            spec["acceleration"] = DEFAULT_CINE_ACCELERATION
            self.mask_panel.set_spec_values(spec)
            self._enter_cine_mode()
        volume = self.volume
        summary = volume.summary() | {"format": f"{volume.format} ({volume.num_frames} frames)"}
        self.data_panel.set_volume_info(
            summary, volume.num_slices, volume.num_coils, volume.slice_index
        )
        self.cine_bar.set_frames(session.frames)
        self.cine_panel.set_rows(session.reference.shape[0], session.reference.shape[0] // 2)
        self._slice_loaded()
        self.setWindowTitle(f"mriviewer {__version__} — {Path(volume.path).name} (cine)")
        self.statusBar().showMessage(f"opened {volume.path} (cine, {session.frames} frames)", 5000)
        self.error_label.setText("")
        return True

    def load_slice(self, index: int) -> bool:
        ok = super().load_slice(index)
        if ok and self.session.is_cine:
            self.cine_bar.set_frames(self.session.frames)
        return ok

    def _enter_cine_mode(self) -> None:
        from mriviewer.core.cine import CINE_METHODS

        if "kt-l1" not in self.methods_panel.keys():
            self.methods_panel.add_method(
                "kt-l1",
                "kt-l1",
                "kt-l1: k-t compressed sensing (cine only): 1/2 ||Ax - y||^2 + lamda ||F_t x||_1, "
                "FISTA, soft-thresholding in temporal frequency\n\nsettings:\n  lamda: 0.01\n"
                "  max_iter: 30",
            )
        self._set_methods_enabled(set(CINE_METHODS))
        checked = [m for m in CINE_CHECKED if m in CINE_METHODS]
        self.methods_panel.set_checked(checked + self.bundled_cine_models())
        self.cine_bar.show()
        self.docks["cine"].show()
        QTimer.singleShot(0, self._size_cine_docks)  # once the window is shown
        self.region_combo.setCurrentIndex(self.region_combo.findData("all"))

    def _size_cine_docks(self) -> None:
        docks = [self.docks[k] for k in ("curves", "metrics", "cine")]
        self.resizeDocks(docks, [5, 4, 7], Qt.Orientation.Horizontal)

    def _leave_cine_mode(self) -> None:
        self.set_playing(False)
        self.cine_bar.hide()
        self.docks["cine"].hide()
        self._set_methods_enabled(None)
        self._remove_profile_line()
        self.kspace_view.view.setAspectLocked(True)
        self.kspace_view.shape = None
        self._update_kspace_view()

    def is_cine_model(self, key: str) -> bool:
        """True when the method ``key`` is a cine model (its card's denoiser is ``3d``/``2+1d``)."""
        return key.startswith("model:") and is_cine_model(self.model_cards.get(key))

    def bundled_cine_models(self) -> list[str]:
        """Keys of the zoo's cine models (named ``cine-*``): checked when a cine file opens."""
        return [
            key
            for name, key in self.zoo_keys.items()
            if name.startswith("cine-") and self.is_cine_model(key)
        ]

    def _refresh_methods_enabled(self) -> None:
        from mriviewer.core.cine import CINE_METHODS

        self._set_methods_enabled(set(CINE_METHODS) if self.session.is_cine else None)

    def unavailable_methods(self, methods: list[str]) -> dict[str, str]:
        """``{key: why}`` for the methods of ``methods`` the open file's mode cannot run (the
        ones listed greyed out): kt-l1 and cine models on a 2-D file, 2-D-only methods on a
        cine file."""
        from mriviewer.core.cine import CINE_METHODS

        why: dict[str, str] = {}
        for key in methods:
            if self.session.is_cine:
                if key not in CINE_METHODS and not key.startswith("model:"):
                    why[key] = f"{key} runs on 2-D slices, not on cine series"
            elif key == "kt-l1":
                why[key] = "kt-l1 runs on cine files only (open one, e.g. demo-cine)"
            elif self.is_cine_model(key):
                name = Path(key[len("model:") :]).stem
                why[key] = (
                    f"{name} is a cine model: it runs on cine files only (open one, e.g. demo-cine)"
                )
        return why

    def _set_methods_enabled(self, allowed: set[str] | None) -> None:
        """Only ``allowed`` methods and the models can be checked (None, the 2-D mode: all but
        the cine-only kt-l1 and the cine models, which are listed greyed out with a tooltip)."""
        panel = self.methods_panel
        for i in range(panel.list.count()):
            item: QListWidgetItem = panel.list.item(i)
            key = item.data(Qt.ItemDataRole.UserRole)
            cine_model = self.is_cine_model(key)
            if allowed is None:
                on = key != "kt-l1" and not cine_model
            else:  # models run on cine series too (frames as the batch: core.recon.cine)
                on = key in allowed or key.startswith("model:")
            if cine_model:
                kind = (
                    f"cine model ({model_denoiser(self.model_cards.get(key))} denoiser over time)"
                )
                note = ": runs on cine files only (open one, e.g. demo-cine)" if not on else ""
                item.setToolTip(f"{kind}{note}\n{key[len('model:') :]}")
            flags = item.flags()
            item.setFlags(
                flags | Qt.ItemFlag.ItemIsEnabled if on else flags & ~Qt.ItemFlag.ItemIsEnabled
            )
            if not on:
                item.setCheckState(Qt.CheckState.Unchecked)

    # ----- mask and k-space view ----------------------------------------------------------------
    def _mask_changed(self) -> None:
        if not self.session.is_cine:
            return super()._mask_changed()
        if self.mask is None:
            return
        self.session.mask_kind = self.mask_panel.kind()
        achieved, sampled, total = self.session.achieved()
        self.mask_panel.set_achieved(achieved, sampled, total, self.session.mask_note())
        self._update_kspace_view()
        self.kspace_view.set_acs(None)

    def _update_kspace_view(self) -> None:
        """Cine: the ky-t image (frames down, phase-encode lines across) of the k-space's
        central readout row, with the k-t mask over it."""
        if not self.session.is_cine:
            return super()._update_kspace_view()
        if self.kspace is None:
            return
        h = self.kspace.shape[-2]
        rows = self.kspace[:, :, h // 2, :]  # (T, C, W)
        coil = self.data_panel.coil()
        mags = np.stack([log_magnitude(r[:, None, :], coil)[0] for r in rows])
        view = self.kspace_view.view
        if view.state["aspectLocked"]:  # a ky-t image fills the view: frames are few
            view.setAspectLocked(False)
            self.kspace_view.shape = None  # fit it once (set_kspace auto-ranges a new shape)
        self.kspace_view.set_kspace(mags)
        self.kspace_view.set_mask(None if self.mask is None else self.mask.ky_t())

    # ----- frames -------------------------------------------------------------------------------
    def set_frame(self, frame: int) -> None:
        """Show ``frame`` in every pane, error map, the curves' frame marker and the table."""
        if not self.session.is_cine:
            return
        frame = self.session.set_frame(frame)
        if self.cine_bar.slider.value() != frame:
            self.cine_bar.slider.blockSignals(True)
            self.cine_bar.slider.setValue(frame)
            self.cine_bar.slider.blockSignals(False)
        self.cine_bar.set_label(frame)
        self._shown.clear()
        self.show_iteration(self.iter_slider.value(), move_marker=False)

    def step_frame(self, delta: int) -> None:
        self.set_frame(self.session.frame + delta)

    def set_playing(self, on: bool) -> None:
        """Play / pause the series at the bar's frames per second."""
        on = bool(on) and self.session.is_cine
        if on:
            self.play_timer.start()
        else:
            self.play_timer.stop()
        if self.cine_bar.play_button.isChecked() != on:
            self.cine_bar.play_button.setChecked(on)

    def _fps_changed(self, fps: float) -> None:
        self.play_timer.setInterval(max(1, int(round(1000.0 / max(fps, 0.1)))))

    def _next_frame(self) -> None:
        self.step_frame(+1)

    # ----- views that follow the iteration and the frame ----------------------------------------
    def show_iteration(self, iteration: int, move_marker: bool = True) -> None:
        super().show_iteration(iteration, move_marker)
        if self.session.is_cine:
            self._update_cine_views()

    def _update_cine_views(self) -> None:
        it = self.iter_slider.value()
        session = self.session
        self.cine_panel.set_frame_curves(
            {
                key: (trace.label, trace.color, session.frame_psnr(key, it))
                for key, trace in self.traces.items()
                if trace.iterations
            }
        )
        self.cine_panel.set_frame(session.frame)
        self._update_profiles()
        self._show_profile_line()

    def profile_row(self) -> int:
        return self.cine_panel.row_spin.value()

    def set_profile_row(self, row: int) -> None:
        """The x-t profiles along image row ``row`` (the spin box or a click on a pane)."""
        if self.cine_panel.row_spin.value() != row:
            self.cine_panel.row_spin.setValue(row)  # emits rowChanged -> here again
            return
        if self.session.is_cine:
            self._update_profiles()
            self._show_profile_line()

    def temporal_profiles(self) -> dict[str, np.ndarray]:
        """``key -> (T, w)`` x-t image along the profile row at the shown iteration."""
        it, row = self.iter_slider.value(), self.profile_row()
        keys = [REFERENCE, *self.traces]
        out = {}
        for key in keys:
            profile = self.session.temporal_profile(key, it, row)
            if profile is not None:
                out[key] = profile
        return out

    def _magnitude_levels(self) -> tuple[float, float]:
        if self.display_mode == "magnitude":
            return self.grid.levels()
        return default_levels(self.session.cine_reference, "magnitude")

    def _update_profiles(self) -> None:
        # the profiles do not depend on the frame: redrawn only when what they show changed
        it, row = self.iter_slider.value(), self.profile_row()
        state = (
            it,
            row,
            self._magnitude_levels(),
            id(self.session.cine_reference),
            tuple((k, id(self.session.series(k, it))) for k in self.traces),
        )
        if getattr(self, "_profiles_shown", None) == state:
            return
        self._profiles_shown = state
        titles = {REFERENCE: "reference"} | {k: t.label for k, t in self.traces.items()}
        self.cine_panel.set_profiles(
            {k: (titles[k], v) for k, v in self.temporal_profiles().items()},
            self._magnitude_levels(),
        )

    def _show_profile_line(self) -> None:
        pane = self.grid.panes.get(REFERENCE)
        if pane is None:
            return
        if self._profile_line is None or self._profile_line[0] is not pane:
            self._remove_profile_line()
            line = pg.InfiniteLine(
                angle=0, movable=False, pen=pg.mkPen("#dddd55", style=Qt.PenStyle.DashLine)
            )
            pane.view.addItem(line, ignoreBounds=True)
            self._profile_line = (pane, line)
        if id(pane) not in self._clickable_panes:
            self._clickable_panes.add(id(pane))
            pane.widget.scene().sigMouseClicked.connect(
                lambda ev, p=pane: self._pane_clicked(p, ev)
            )
        self._profile_line[1].setValue(self.profile_row() + 0.5)

    def _remove_profile_line(self) -> None:
        if self._profile_line is not None:
            pane, line = self._profile_line
            pane.view.removeItem(line)
            self._profile_line = None

    def _pane_clicked(self, pane, event) -> None:
        if not self.session.is_cine or event.button() != Qt.MouseButton.LeftButton:
            return
        pos = pane.view.mapSceneToView(event.scenePos())
        if self.reference is not None and 0 <= pos.y() < self.reference.shape[0]:
            self.set_profile_row(int(pos.y()))

    def figure_spec(self):
        """The figure of the current frame; its note says which frame and what the series
        metrics are."""
        spec = super().figure_spec()
        if self.session.is_cine:
            session = self.session
            spec.note = (
                f"frame {session.frame} of 0-{session.frames - 1}; {session.metrics_note()}; "
                f"{self.mask_description()}"
            )
        return spec

    # ----- export -------------------------------------------------------------------------------
    #: the file dialog's filters of the animation export and the suffix each one adds
    ANIMATION_FILTERS = {"GIF (*.gif)": ".gif", "MP4 video, H.264 (*.mp4)": ".mp4"}

    def export_animation_dialog(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export animation", "comparison.gif", ";;".join(self.ANIMATION_FILTERS)
        )
        if not path:
            return
        if Path(path).suffix.lower() not in (".gif", ".mp4"):
            path += self.ANIMATION_FILTERS.get(chosen, ".gif")
        self.export_animation(path)

    def animation_keys(self) -> list[str]:
        """Reference and the methods with an image at the shown iteration, in pane order."""
        it = self.iter_slider.value()
        return [k for k in [REFERENCE, *self.traces] if self.session.series(k, it) is not None]

    def animation_panes(self) -> list:
        """The panes of the animation: reference and every method with an image at the shown
        iteration, ``(T, h, w)`` in the display mode, titled as on screen; a method's caption is
        its PSNR/SSIM per frame when the series has a reference."""
        from mriviewer.core.cine_session import AnimationPane, frame_metric_captions
        from mriviewer.gui.widgets.grid import display_array

        it = self.iter_slider.value()
        reference = self.session.series(REFERENCE, it)
        out = []
        for key in self.animation_keys():
            series = self.session.series(key, it)
            if key == REFERENCE:
                title, captions = self.reference_title().split("<br>")[0], None
            else:
                trace = self.traces[key]
                title = trace.label
                idx = trace.index_at(it)
                final = trace.complete and idx == len(trace.iterations) - 1
                if trace.iterations[idx] != it and not final:  # an earlier iterate is shown
                    title += f" (iteration {trace.iterations[idx]})"
                captions = (
                    frame_metric_captions(reference, series)
                    if self.ground_truth and reference is not None
                    else None
                )
            display = np.stack([display_array(f, self.display_mode) for f in series])
            out.append(AnimationPane(title, display, captions))
        return out

    def export_animation(self, path: str | Path) -> bool:
        """The comparison (reference + methods side by side, the shown iteration, the panes'
        window/level) as an animated GIF or an MP4 (by the suffix), one frame per cine frame at
        the frame bar's fps, titled, with a JSON sidecar. Reports on the status bar; never
        raises."""
        from mriviewer.core.cine_session import write_cine_animation

        title = "Cannot export animation"
        if not self.session.is_cine:
            self.show_error(title, "the animation export needs a cine series")
            return False
        fps = self.cine_bar.fps_spin.value()
        try:
            panes = self.animation_panes()
            sidecar = self.provenance(Path(path)) | {"panes": self.animation_keys(), "fps": fps}
            parts = [f"iteration {self.iter_slider.value()}", f"{fps:g} fps", self.display_mode]
            mask = self.session.mask
            if mask is not None:
                parts.append(f"k-t {mask.spec.kind} R {mask.spec.acceleration:g}")
            header = "   ·   ".join(parts)
            write_cine_animation(path, panes, self.grid.levels(), fps, sidecar, header)
        except MriViewerError as exc:
            self.show_error(title, str(exc).splitlines()[0] if str(exc) else title)
            return False
        except Exception as exc:  # noqa: BLE001 - a menu action reports, it never raises
            self.show_error(title, f"{path}: {type(exc).__name__}: {exc}".splitlines()[0])
            return False
        frames = self.session.frames
        self.statusBar().showMessage(
            f"animation written to {path} ({frames} frames, {fps:g} fps)", 8000
        )
        return True
