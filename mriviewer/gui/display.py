"""What the comparison looks like: panes, iteration slider, curves, metrics table, window
levels and the figure (the presenter half of the main window; the state is the window's
:class:`mriviewer.core.session.ComparisonSession`)."""

from __future__ import annotations

import numpy as np

from mriviewer.core.session import REFERENCE
from mriviewer.gui.widgets.grid import (
    DISPLAY_MODES,
    ERROR_CMAP,
    IMAGE_CMAP,
    default_levels,
    display_array,
    error_array,
)


class DisplayMixin:
    """Panes, curves, table and levels of :class:`mriviewer.gui.main_window.MainWindow`."""

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

    def _keep_spare_panes(self, *_args) -> None:
        """Have the grid build, in idle time, the panes a run of the checked methods needs."""
        missing = [m for m in self.methods_panel.checked() if m not in self.grid.panes]
        self.grid.keep_spare_panes(len(missing))

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
        top = self.session.max_iteration()
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
        self.curves.set_iteration_span(self.session.max_iteration())
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
            stored = trace.images[idx]
            image = self.session.frame_image(stored)  # a cine series: the current frame
            state = (id(pane), mode, errors, id(stored), id(self.reference), self.session.frame)
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

    def _update_note(self) -> None:
        if self.reference is None:
            return
        lo, hi = self.grid.levels()
        self.metrics_note.setText(
            f"{self.session.metrics_note()}   ·   display: {self.display_mode}, "
            f"window [{lo:.4g}, {hi:.4g}] (same for all panes)"
        )
