"""A comparison session, Qt-free: file, slice, mask, methods and their results, the reference
convention, provenance, and every export. The app presents one; scripts drive one headless.

State flows one way: :meth:`ComparisonSession.open` / :meth:`select_slice` load a slice (its
k-space, the image shown as reference and the data's own sampling), the mask methods set the
sampling of the next run, :meth:`run_request` builds the plain-data :class:`RunRequest` a
compute process executes, and :meth:`apply` folds the streamed messages
(:func:`mriviewer.core.runs.execute`) into per-method :class:`MethodTrace` records.
:meth:`run` does all of that synchronously (no Qt, no worker) for scripts and tests.

Exports (:meth:`provenance`, :meth:`export_metrics`, :meth:`export_recons`,
:meth:`session_state`) take a ``view`` dict with what only the presenter knows (display mode,
window levels, the iteration shown, the device); :func:`default_view` gives a headless one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer import __version__
from mriviewer.core.errors import MaskError, MriViewerError
from mriviewer.core.runs import IterationPayload, RunRequest, execute
from mriviewer.core.session_file import SessionState, mask_file_for

#: columns of the metrics CSV export
METRIC_FIELDS = (
    "method",
    "iteration",
    "psnr",
    "ssim",
    "nmse",
    "dc_residual",
    "rel_change",
    "seconds",
    "peak_memory_mb",
    "final",
    "reference",
)
#: the reference pane's key in traces-like mappings
REFERENCE = "reference"


@dataclass
class MethodTrace:
    """Everything streamed for one method: images (original units) and metrics per iteration."""

    key: str
    label: str
    color: str = "#1f77b4"
    iterations: list[int] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)
    peak_memory_mb: float = 0.0
    complete: bool = False
    error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: what the method reported with its final result (``IterationPayload.extra``), e.g. the
    #: kernel GRAPPA chose for ``kernel_size="auto"``; recorded as ``settings["resolved"]``
    resolved: dict[str, Any] = field(default_factory=dict)

    def add(self, payload: IterationPayload) -> None:
        if payload.final and payload.extra:
            self.resolved = dict(payload.extra)
            if self.settings:
                self.settings = {**self.settings, "resolved": self.resolved}
        self.iterations.append(payload.iteration)
        self.images.append(payload.image)
        self.metrics.append(payload.metrics)
        self.elapsed.append(payload.elapsed)
        self.peak_memory_mb = max(self.peak_memory_mb, payload.peak_memory_mb)
        self.complete = self.complete or payload.final

    def index_at(self, iteration: int) -> int | None:
        """Index of the latest stored iteration <= ``iteration`` (None before the first)."""
        best = None
        for i, it in enumerate(self.iterations):
            if it <= iteration and (best is None or it >= self.iterations[best]):
                best = i
        return best


def card_hash(card: Any) -> str:
    """SHA-256 of a model card (JSON with sorted keys, or the text itself)."""
    text = json.dumps(card, sort_keys=True, default=str) if not isinstance(card, str) else card
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_view(session: ComparisonSession, iteration: int | None = None) -> dict[str, Any]:
    """A presenter-free view: magnitude display, the reference's 1st-99th percentile window,
    the last iteration, CPU."""
    levels = None
    if session.reference is not None:
        lo, hi = np.percentile(session.reference, [1, 99])
        levels = [float(lo), float(hi)]
    return {
        "device": "cpu",
        "display": "magnitude",
        "levels": levels,
        "error_levels": None,
        "iteration": session.max_iteration() if iteration is None else iteration,
    }


class ComparisonSession:
    """The state of one comparison (see the module docstring). Every method that reads a file
    or an option raises :class:`MriViewerError` (one line naming the file and the problem) and
    leaves the session as it was."""

    #: a cine series (:class:`mriviewer.core.cine_session.CineSession`)?
    is_cine = False
    frame = 0

    def __init__(self) -> None:
        self.volume = None  # KSpaceVolume
        self.kspace: np.ndarray | None = None
        #: image of the reference pane: the reference of the last run's convention, the
        #: file's reference, or the RSS of the k-space (not a reference when undersampled)
        self.reference: np.ndarray | None = None
        self.sampling = None  # SamplingInfo of the slice
        self.ground_truth = True
        self.mask = None  # SamplingMask
        self.mask_kind = "random"  # random | equispaced | poisson | gaussian | array | data
        self.mask_file: str | None = None
        self.reference_choice = "rss"  # the convention the next run uses
        self.metrics_region = "all"
        self.reference_kind: str | None = "rss"  # the convention of the shown metrics
        self.traces: dict[str, MethodTrace] = {}
        self.run_methods: list[str] = []
        self.run_warnings: list[str] = []
        self.model_cards: dict[str, Any] = {}
        self.model_files: list[str] = []
        self._band = None

    # ----- file and slice ---------------------------------------------------------------------
    def open(
        self,
        path: str | Path,
        slice_index: int | None = None,
        encoding: int | None = None,
        prewhiten: bool = True,
    ) -> None:
        """Open a k-space file (or ``"demo"``) at ``slice_index`` (default: the middle slice)."""
        from mriviewer.core.io import open_kspace

        options = {} if encoding is None else {"encoding": encoding}
        volume = open_kspace(path, prewhiten=prewhiten, **options)
        index = volume.num_slices // 2 if slice_index is None else volume.select_index(slice_index)
        slice_data = self.read_slice(volume, index)
        volume.select(index)
        self.volume = volume
        self._set_slice(*slice_data)

    def select_slice(self, index: int) -> None:
        """Show another slice of the open file (results are cleared)."""
        if self.volume is None:
            raise MriViewerError("no file is open")
        slice_data = self.read_slice(self.volume, index)
        self.volume.select(index)
        self._set_slice(*slice_data)

    @staticmethod
    def read_slice(volume, index: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """k-space, the image shown in the reference pane and the data's own sampling.

        The image is the file's reference, else the RSS of the k-space: a reference when the
        k-space is fully sampled, only the acquired data's RSS when it is undersampled."""
        from mriviewer.core.images import center_crop
        from mriviewer.core.physics.fft import ifft2c_np, rss
        from mriviewer.core.physics.sampling import detect_sampling

        kspace = volume.read_kspace(index)
        sampling = detect_sampling(kspace)
        reference = volume.read_reference(index)
        if reference is None:
            reference = center_crop(rss(ifft2c_np(kspace)), volume.recon_matrix).astype(np.float32)
        return kspace, reference, sampling

    def _set_slice(self, kspace: np.ndarray, reference: np.ndarray, sampling: Any) -> None:
        self.kspace = kspace
        self.reference = reference
        self.sampling = sampling
        self._band = None
        has_file_reference = self.volume is not None and self.volume.has_reference
        self.ground_truth = bool(sampling.fully_sampled or has_file_reference)
        self.reference_kind = self.reference_choice if self.ground_truth else None
        self.run_warnings = []
        self.traces = {}
        if not sampling.fully_sampled:
            # an accelerated scan: its own sampling is the mask unless the user asks for more
            self.mask_kind = "data"
        elif self.mask_kind == "data":
            self.mask_kind = "random"

    def reload_reference(self) -> None:
        """Back to the file's (or the RSS) reference image of the shown slice."""
        if self.volume is not None:
            _, self.reference, _ = self.read_slice(self.volume, self.volume.slice_index)

    # ----- mask ---------------------------------------------------------------------------------
    def acquired_band(self):
        """:class:`AcquiredBand` of the shown slice: zero-padded phase-encode columns (fastMRI
        knee) lie outside it; masks are drawn and R is counted inside it."""
        from mriviewer.core.physics.band import acquired_band

        if self._band is None or self._band[0] is not self.kspace:
            header = self.volume.header if self.volume is not None else None
            self._band = (self.kspace, acquired_band(self.kspace, header))
        return self._band[1]

    def data_mask(self):
        """The data's own sampling as a mask (all points for fully sampled data)."""
        from mriviewer.core.physics.masks import MaskSpec, SamplingMask

        pattern = (
            self.sampling.pattern
            if self.sampling is not None
            else np.ones(self.kspace.shape[-2:], dtype=bool)
        )
        return SamplingMask(pattern.copy(), MaskSpec(kind="array", acceleration=1.0, seed=None))

    def make_mask(self, spec) -> None:
        """Draw the mask of ``spec`` (a :class:`MaskSpec`) inside the acquired band; raises
        MaskError for settings no mask can meet (the previous mask stays)."""
        from mriviewer.core.physics.masks import make_mask

        if self.kspace is None:
            raise MaskError("open a k-space file first")
        band = self.acquired_band().columns  # zero-padded columns are never sampled
        self.mask = make_mask(spec, self.kspace.shape[-2:], band=band)
        self.mask_kind = spec.kind
        self.mask_file = None

    def use_data_sampling(self) -> None:
        """The data's own sampling becomes the mask (kind ``data``)."""
        if self.kspace is None:
            raise MaskError("open a k-space file first")
        self.mask = self.data_mask()
        self.mask_kind = "data"
        self.mask_file = None

    def set_mask_array(self, array: np.ndarray, source_file: str | None = None) -> None:
        """Use a drawn or loaded ``(H, W)`` mask (kind becomes ``array``)."""
        from mriviewer.core.physics.masks import MaskSpec, SamplingMask

        self.mask = SamplingMask(
            np.asarray(array, dtype=bool), MaskSpec(kind="array", acceleration=1.0, seed=None)
        )
        self.mask_kind = "array"
        self.mask_file = source_file

    def load_mask(self, path: str | Path) -> None:
        """Load an ``(H, W)`` .npy mask matching the slice; raises MaskError."""
        from mriviewer.core.physics.masks import load_mask

        shape = None if self.kspace is None else self.kspace.shape[-2:]
        mask = load_mask(path, shape)
        self.set_mask_array(mask.array, str(Path(path).resolve()))

    def save_mask(self, path: str | Path) -> None:
        """Write the mask as .npy (atomic); raises MaskError without one."""
        from mriviewer.core.physics.masks import save_mask

        if self.mask is None:
            raise MaskError("no mask yet: open a file first")
        save_mask(self.mask, path)

    def effective_mask(self) -> np.ndarray | None:
        """The points a run uses: the mask, within the data's own sampling when undersampled."""
        if self.mask is None:
            return None
        arr = self.mask.array
        if self.sampling is not None and not self.sampling.fully_sampled:
            arr = arr & self.sampling.pattern
        return arr

    def achieved(self) -> tuple[float, int, int]:
        """(achieved R, sampled points, points) of the effective mask over the acquired band."""
        arr = self.effective_mask()
        band = self.acquired_band() if self.kspace is not None else None
        inside = arr if band is None or band.is_full else arr[:, band.start : band.stop]
        sampled = int(inside.sum())
        return inside.size / max(sampled, 1), sampled, int(inside.size)

    def mask_note(self) -> str:
        """What the achieved R means (band, data's own sampling, mask warnings), as lines."""
        band = self.acquired_band() if self.kspace is not None else None
        lines = list(self.mask.warnings) if self.mask is not None else []
        if band is not None and not band.is_full:
            lines.append(f"R over the acquired {band.describe()}")
        if self.sampling is not None and not self.sampling.fully_sampled:
            if self.mask_kind == "data":
                acs = self.sampling.acs
                lines.insert(0, f"data's own sampling, ACS {acs[0]} x {acs[1]}")
            else:
                lines.insert(
                    0,
                    f"mask on top of the data's own sampling (R {self.sampling.acceleration:.2f});"
                    + (" R of the full grid" if band is None or band.is_full else ""),
                )
        return "\n".join(lines)

    def acs_band(self) -> tuple[int, int] | None:
        """Columns ``[c0, c1)`` of the fully sampled centre of a 1-D mask (None for 2-D)."""
        if self.mask is None:
            return None
        arr = self.mask.array
        if not np.all(arr == arr[:1]):
            return None
        line = arr[0]
        centre = line.size // 2
        if not line[centre]:
            return None
        c0, c1 = centre, centre + 1
        while c0 > 0 and line[c0 - 1]:
            c0 -= 1
        while c1 < line.size and line[c1]:
            c1 += 1
        return (c0, c1)

    def set_acs_band(self, c0: int, c1: int) -> bool:
        """Make columns ``[c0, c1)`` the fully sampled centre of a 1-D mask (mask becomes
        user-drawn); the previous band's columns outside the new one are dropped. True if the
        mask changed."""
        old = self.acs_band()
        if old is None or self.mask is None:
            return False
        line = self.mask.array[0].copy()
        line[old[0] : old[1]] = False
        line[c0:c1] = True
        arr = np.broadcast_to(line[None, :], self.mask.shape).copy()
        if np.array_equal(arr, self.mask.array):
            return False
        self.set_mask_array(arr)
        return True

    def edit_mask(self, row: int, col: int, add: bool) -> bool:
        """Add or remove a line (1-D masks) or a point (2-D masks) at (row, col); True if the
        mask changed. Raises MaskError when the edit would leave no sample."""
        if self.mask is None:
            return False
        arr = self.mask.array.copy()
        if np.all(arr == arr[:1]):
            arr[:, col] = add
        else:
            arr[row, col] = add
        if not arr.any():
            raise MaskError("a mask must keep at least one sample")
        if np.array_equal(arr, self.mask.array):
            return False
        self.set_mask_array(arr)
        return True

    def mask_description(self) -> str:
        """One line: the mask kind, its R (over the band) and seed."""
        if self.mask is None:
            return "no mask"
        spec = self.mask.spec
        achieved = self.achieved()[0]
        if self.mask_kind == "data":
            return f"the data's own sampling, R = {achieved:.2f}"
        on_top = (
            " on top of the data's own sampling (R of the full grid)"
            if self.sampling is not None and not self.sampling.fully_sampled
            else ""
        )
        if spec.kind == "array":
            return f"user mask{on_top}, achieved R = {achieved:.2f}"
        return (
            f"{spec.kind} mask{on_top} R = {spec.acceleration:g} (achieved {achieved:.2f}), "
            f"seed {spec.seed}"
        )

    # ----- runs ---------------------------------------------------------------------------------
    def run_request(
        self,
        methods: list[str],
        device: str = "cpu",
        settings: dict[str, dict] | None = None,
        imports: list[str] | None = None,
    ) -> RunRequest:
        """The plain-data request for ``methods`` on the shown slice with the effective mask and
        the chosen convention. Raises MriViewerError without a slice, a mask or methods."""
        if self.kspace is None or self.mask is None:
            raise MriViewerError(self.no_data_message)
        if not methods:
            raise MriViewerError("no method to run")
        file_reference = self.volume is not None and self.volume.has_reference
        kind = self.reference_choice
        mask, reference, region, fully_sampled = self.run_inputs()
        return RunRequest(
            kspace=self.kspace,
            mask=mask,
            # the file's own reference (RSS convention), else computed by the core from the
            # fully sampled k-space in the chosen convention; none for undersampled data
            reference=reference if (file_reference and kind == "rss") else None,
            recon_matrix=tuple(reference.shape[-2:]),
            methods=list(methods),
            device=device,
            source=f"{self.volume.path}#slice{self.volume.slice_index}" if self.volume else "",
            settings=dict(settings or {}),
            imports=list(imports or []),
            reference_kind=kind,
            metrics_region=region,
            fully_sampled=fully_sampled,
        )

    #: what :meth:`run_request` says without a slice or a mask
    no_data_message = "open a k-space file first"

    def run_inputs(self) -> tuple[np.ndarray, np.ndarray, str, bool | None]:
        """(mask, reference image, metrics region, fully sampled) of the next run: the
        effective mask and the shown reference (a cine session gives its series')."""
        fully_sampled = bool(self.sampling.fully_sampled) if self.sampling else None
        return self.effective_mask().copy(), self.reference, self.metrics_region, fully_sampled

    def begin_run(self, methods: list[str], labels: dict[str, str], colors: dict[str, str]) -> None:
        """Start fresh traces for ``methods`` (labels and colours as the presenter shows them)."""
        self.run_methods = list(methods)
        self.traces = {
            k: MethodTrace(k, labels.get(k, k), colors.get(k, "#1f77b4")) for k in methods
        }
        self.run_warnings = []

    def apply(self, message: tuple) -> None:
        """Fold one message of :func:`mriviewer.core.runs.execute` into the session."""
        kind = message[0]
        if kind == "prepared":
            info = message[1]
            reference = info.get("reference")
            self.reference_kind = info.get("reference_kind")
            if reference is not None and self.ground_truth:
                self.reference = np.asarray(reference, dtype=np.float32)
            self.run_warnings = list(info.get("warnings") or [])
        elif kind == "iteration":
            trace = self.traces.get(message[1].method)
            if trace is not None:
                trace.add(message[1])
        elif kind == "method_finished":
            trace = self.traces.get(message[1])
            if trace is not None:
                trace.settings = dict(message[2].get("settings", {}))
                if trace.resolved:
                    trace.settings["resolved"] = trace.resolved
                trace.peak_memory_mb = max(
                    trace.peak_memory_mb, message[2].get("peak_memory_mb", 0.0)
                )
        elif kind == "method_failed":
            trace = self.traces.get(message[1])
            if trace is not None:
                trace.error = message[2]

    def run(
        self,
        methods: list[str],
        device: str = "cpu",
        settings: dict[str, dict] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict[str, MethodTrace]:
        """Run ``methods`` here and now (no worker, no Qt); returns the traces. Failures of one
        method are recorded in its trace's ``error``; a failed preparation raises."""
        request = self.run_request(methods, device, settings)
        self.begin_run(methods, {}, {})
        for message in execute(request, should_stop or (lambda: False)):
            if message[0] == "failed":
                raise MriViewerError(message[1])
            self.apply(message)
        return self.traces

    def frame_image(self, image: np.ndarray) -> np.ndarray:
        """What a pane shows of a trace's image: the image itself (a cine session: the current
        frame of its series)."""
        return image

    def max_iteration(self) -> int:
        its = [max(t.iterations) for t in self.traces.values() if t.iterations]
        return max(its) if its else 0

    # ----- what the metrics mean ----------------------------------------------------------------
    def measures(self) -> tuple[str, str]:
        """The two per-iteration measures shown: PSNR/SSIM, or without ground truth the
        data-consistency residual and the relative change."""
        return ("psnr", "ssim") if self.ground_truth else ("dc_residual", "rel_change")

    def metrics_text(self, met: dict) -> str:
        """One line of a method's metrics for pane titles and figure captions."""
        if self.ground_truth:
            return f"PSNR {met.get('psnr', np.nan):.2f} dB · SSIM {met.get('ssim', np.nan):.3f}"
        change, residual = met.get("rel_change", np.nan), met.get("dc_residual", np.nan)
        return (
            f"DC residual {residual:.4f}" if np.isfinite(residual) else "DC residual n/a (RSS)"
        ) + (f" · change {change:.1e}" if np.isfinite(change) else " · first iterate")

    def reference_title(self) -> str:
        """Title of the reference pane: what the image is (two lines, HTML break)."""
        if not self.ground_truth:
            return "acquired data, zero-filled RSS<br>not a reference: no ground truth"
        kind = self.reference_kind or self.reference_choice
        name = {"rss": "RSS", "sense": "SENSE"}.get(kind, kind)
        second = "metrics over its foreground" if self.metrics_region == "foreground" else "&nbsp;"
        return f"reference: {name}, fully sampled<br>{second}"  # short: fits a narrow pane

    def reference_description(self) -> str:
        """The metric convention in words (notes, captions, sidecars)."""
        from mriviewer.core.reference import describe_reference

        if not self.ground_truth:
            return describe_reference(None)
        return describe_reference(self.reference_kind or self.reference_choice, self.metrics_region)

    def metrics_note(self) -> str:
        """What the shown metrics are, for the note under the panes."""
        if self.ground_truth:
            data_range = float(self.reference.max()) if self.reference is not None else np.nan
            return (
                f"{self.reference_description()}; PSNR/SSIM/NMSE on |image| (fastMRI "
                f"definitions), data_range = max(reference) = {data_range:.4g}"
            )
        r = self.sampling.acceleration if self.sampling is not None else float("nan")
        return (
            f"k-space undersampled (R {r:.2f}): no ground truth, no PSNR/SSIM/NMSE; shown: "
            "data-consistency residual ||M F S x - y|| / ||y|| and change per iteration"
        )

    # ----- provenance and exports ---------------------------------------------------------------
    def provenance(self, view: dict[str, Any], out_path: Path | None = None) -> dict[str, Any]:
        """Everything needed to redo the comparison (file + hash, slice, mask, methods, the
        convention, levels). A user-drawn mask is written beside ``out_path`` when given."""
        from mriviewer.core.figures import sha256_file
        from mriviewer.core.physics.masks import save_mask

        info: dict[str, Any] = {"mriviewer": __version__}
        if self.volume is not None:
            info["file"] = {
                "path": str(self.volume.path),
                "sha256": sha256_file(self.volume.path),
                "format": self.volume.format,
            }
            info["slice"] = self.volume.slice_index
            info["prewhitened"] = bool(self.volume.whitened)
        if self.mask is not None:
            mask_info: dict[str, Any] = {
                "achieved_acceleration": self.mask.achieved_acceleration,
                "shape": list(self.mask.shape),
            }
            if self.mask_kind == "data":
                mask_info["spec"] = {"kind": "data", "description": "the data's own sampling"}
            elif self.mask.spec.kind == "array":
                if out_path is not None:
                    mpath = out_path.with_name(out_path.name + ".mask.npy")
                    save_mask(self.mask, mpath)
                    mask_info["file"] = mpath.name
                    mask_info["sha256"] = sha256_file(mpath)
                elif self.mask_file:
                    mask_info["file"] = self.mask_file
            else:
                mask_info["spec"] = self.mask.spec.to_dict()
            info["mask"] = mask_info
        iteration = view.get("iteration", self.max_iteration())
        methods = []
        for key, trace in self.traces.items():
            entry: dict[str, Any] = {
                "name": key,
                "label": trace.label,
                "settings": trace.settings,
                "complete": trace.complete,
            }
            if key in self.model_cards:
                entry["model_card_sha256"] = card_hash(self.model_cards[key])
                path = Path(key[len("model:") :])
                if path.is_file():
                    entry["weights_sha256"] = sha256_file(path)
            idx = trace.index_at(iteration)
            if idx is not None:
                entry["iteration"] = trace.iterations[idx]
                entry["metrics"] = trace.metrics[idx]
            methods.append(entry)
        info["methods"] = methods
        info["ground_truth"] = self.ground_truth
        info["reference"] = self.reference_kind if self.ground_truth else None
        info["reference_definition"] = self.reference_description()
        info["metrics_region"] = self.metrics_region
        if self.sampling is not None:
            info["data_sampling"] = self.sampling.to_dict()
        info["warnings"] = list(self.run_warnings)
        info["device"] = view.get("device", "cpu")
        info["display"] = view.get("display", "magnitude")
        info["levels"] = view.get("levels")
        info["error_levels"] = view.get("error_levels")
        info["iteration"] = iteration
        return info

    def metric_rows(self) -> list[dict[str, Any]]:
        """One row per method and iteration with :data:`METRIC_FIELDS`."""
        rows = []
        for trace in self.traces.values():
            for i, it in enumerate(trace.iterations):
                met = trace.metrics[i]
                row = {k: met.get(k) for k in METRIC_FIELDS[2:7]}
                row.update(
                    reference=self.reference_description(),
                    method=trace.key,
                    iteration=it,
                    seconds=trace.elapsed[i],
                    peak_memory_mb=trace.peak_memory_mb,
                    final=i == len(trace.iterations) - 1 and trace.complete,
                )
                rows.append({k: row[k] for k in METRIC_FIELDS})
        return rows

    def export_metrics(self, path: str | Path, view: dict[str, Any]) -> Path:
        """Metrics per method and iteration as ``.csv`` or ``.json`` (with provenance)."""
        from mriviewer.core.io.atomic import atomic_write_text

        path = Path(path)
        rows = self.metric_rows()
        if path.suffix.lower() == ".json":
            text = json.dumps({"provenance": self.provenance(view), "rows": rows}, indent=2)
        elif path.suffix.lower() == ".csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(METRIC_FIELDS))
            writer.writeheader()
            writer.writerows(rows)
            text = buf.getvalue()
        else:
            raise MriViewerError("metrics export needs a .csv or .json file name", path)
        atomic_write_text(path, text)
        return path

    def export_recons(self, path: str | Path, view: dict[str, Any]) -> list[str]:
        """Final images (original units, complex64) of every method that has one: ``.h5`` (the
        layout of :func:`mriviewer.core.export.write_recon_h5`, every iteration kept), ``.npy``
        stack ``(M, h, w)`` (names and provenance in ``<file>.json``), or DICOM / NIfTI
        (``<stem>_<method><suffix>`` per method). Returns notes for the user."""
        from mriviewer.core.export import (
            frame_interval_s,
            recon_suffix,
            write_recon_h5,
            write_reconstructions,
        )
        from mriviewer.core.io.atomic import atomic_write_path, atomic_write_text

        path = Path(path)
        traces = [t for t in self.traces.values() if t.images]
        if not traces:
            raise MriViewerError("no reconstructions yet: run a method first", path)
        suffix = recon_suffix(path)
        info = self.provenance(view)
        if suffix == ".npy":
            stack = np.stack([t.images[-1] for t in traces]).astype(np.complex64)
            with atomic_write_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, stack, allow_pickle=False)
            atomic_write_text(
                path.with_name(path.name + ".json"),
                json.dumps({"methods": [t.key for t in traces], "provenance": info}, indent=2),
            )
            return [f"wrote {path.name}"]
        if suffix in (".h5", ".hdf5"):
            write_recon_h5(
                path,
                {
                    t.key: {
                        "final": t.images[-1],
                        "iterations": np.stack(t.images),
                        "iteration_numbers": np.asarray(t.iterations),
                        "metrics": t.metrics[-1],
                        "settings": t.settings,
                    }
                    for t in traces
                },
                reference=self.reference if self.ground_truth else None,
                mask=self.effective_mask(),
                attrs={"provenance": json.dumps(info)},
            )
            return [f"wrote {path.name}"]
        if suffix in (".dcm", ".nii", ".nii.gz"):
            common = {
                k: json.dumps(info[k]) if isinstance(info.get(k), dict) else info.get(k)
                for k in ("mask", "reference", "reference_definition", "slice")
            }
            common["source"] = info.get("file", {}).get("path")
            if self.mask is not None:
                common["acceleration"] = self.mask.achieved_acceleration
            attrs = {
                t.key: {**common, "method": t.key, "method_settings": json.dumps(t.settings)}
                for t in traces
            }
            header = self.volume.header if self.volume is not None else None
            done = write_reconstructions(
                path,
                {t.key: t.images[-1] for t in traces},
                attrs,
                header=header,
                time_spacing_s=frame_interval_s(header or {}) if self.is_cine else None,
            )
            return [f"wrote {', '.join(p.name for p in done.paths)}", *done.notes]
        raise MriViewerError(
            "reconstructions export needs a .npy, .h5, .dcm, .nii or .nii.gz file name", path
        )

    def session_state(
        self, view: dict[str, Any], mask_spec: dict[str, Any], session_path: Path | None = None
    ) -> SessionState:
        """The restorable state (``view`` adds what the presenter holds: coil, methods,
        models, levels, view range, ROI). A user-drawn mask is saved beside the session."""
        from mriviewer.core.physics.masks import save_mask

        mask_file = None
        data_kind = self.mask_kind == "data"
        if self.mask is not None and self.mask.spec.kind == "array" and not data_kind:
            if session_path is not None:
                mpath = mask_file_for(session_path)
                save_mask(self.mask, mpath)
                mask_file = mpath.name
            else:
                mask_file = self.mask_file
        return SessionState(
            file=str(self.volume.path) if self.volume is not None else None,
            slice=self.volume.slice_index if self.volume is not None else 0,
            mask_spec={"kind": "data"} if data_kind else mask_spec,
            mask_file=mask_file,
            models=list(self.model_files),
            reference=self.reference_choice,
            metrics_region=self.metrics_region,
            **view,
        )
