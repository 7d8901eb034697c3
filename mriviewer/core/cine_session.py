"""The comparison session of a cine (2-D + time) series, Qt-free: what the app presents in its
cine mode and what scripts drive headless.

:class:`CineSession` is a :class:`~mriviewer.core.session.ComparisonSession` whose k-space is
the ``(T, C, H, W)`` series of one cine slice, whose mask is a ``(T, H, W)`` k-t mask
(:func:`mriviewer.core.physics.kt_masks.make_kt_mask`) and whose traces hold ``(T, h, w)``
images per iteration (:func:`mriviewer.core.runs.execute` streams them). The current ``frame``
selects what every pane shows: ``reference`` is the reference series' frame and
:meth:`frame_image` slices a trace's image. Metrics are over the series (fastMRI per-volume,
frames stacked as slices) and per frame (``psnr_per_frame``).

:func:`write_cine_gif` writes the comparison as an animated GIF (imageio), one GIF frame per
cine frame, the panes side by side with one window/level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer import __version__
from mriviewer.core.errors import MaskError, MriViewerError
from mriviewer.core.session import REFERENCE, ComparisonSession

#: the app's default k-t mask on a cine file (README "Dynamic (cine) data")
DEFAULT_CINE_ACCELERATION = 8.0


@dataclass
class KtMask:
    """A ``(T, H, W)`` k-t mask with the spec that drew it (the cine counterpart of
    :class:`~mriviewer.core.physics.masks.SamplingMask`)."""

    array: np.ndarray
    spec: Any
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def achieved_acceleration(self) -> float:
        return float(self.array.size / max(int(self.array.sum()), 1))

    def summary(self) -> dict[str, Any]:
        from mriviewer.core.physics.kt_masks import kt_summary

        return kt_summary(self.array)

    def ky_t(self) -> np.ndarray:
        """``(T, W)`` bool: the phase-encode lines each frame samples (frames down)."""
        return self.array.any(axis=1)


class CineSession(ComparisonSession):
    """One cine comparison (see the module docstring)."""

    is_cine = True

    def __init__(self) -> None:
        super().__init__()
        self.frame = 0
        #: ``(T, h, w)`` float32: the reference series (file's RSS, or the run's convention)
        self.cine_reference: np.ndarray | None = None

    # ----- file, slice and frame ----------------------------------------------------------------
    @property
    def frames(self) -> int:
        return 0 if self.kspace is None else int(self.kspace.shape[0])

    def open(
        self,
        path: str | Path,
        slice_index: int | None = None,
        encoding: int | None = None,
        prewhiten: bool = True,
    ) -> None:
        """Open a cine file (or ``demo-cine``) at ``slice_index`` (default: the middle one)."""
        from mriviewer.core.io.cine import open_cine

        volume = open_cine(path)
        if volume.mask is not None:
            raise MriViewerError(
                f"{volume.path}: undersampled cine data (a stored k-t mask) is not shown by the "
                "app yet; use mriviewer eval"
            )
        index = volume.num_slices // 2 if slice_index is None else volume.select_index(slice_index)
        data = self.read_slice(volume, index)
        volume.slice_index = index
        volume.whitened = False
        self.volume = volume
        self._set_cine(*data)

    def select_slice(self, index: int) -> None:
        if self.volume is None:
            raise MriViewerError("no file is open")
        index = self.volume.select_index(index)
        data = self.read_slice(self.volume, index)
        self.volume.slice_index = index
        self._set_cine(*data)

    @staticmethod
    def read_slice(volume, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(T, C, H, W)`` k-space and the ``(T, h, w)`` reference (the file's, else the RSS
        per frame of the fully sampled k-space, cropped to the recon matrix)."""
        from mriviewer.core.images import center_crop
        from mriviewer.core.physics.fft import ifft2c_np, rss

        kspace = volume.read_kspace(index)
        reference = volume.read_reference(index)
        if reference is None:
            reference = np.stack(
                [center_crop(rss(ifft2c_np(f)), volume.recon_matrix) for f in kspace]
            ).astype(np.float32)
        return kspace, reference

    def _set_cine(self, kspace: np.ndarray, reference: np.ndarray) -> None:
        from mriviewer.core.physics.sampling import detect_sampling

        self._set_slice(kspace, reference[0], detect_sampling(kspace[0]))
        self.cine_reference = reference
        self.ground_truth = True
        self.reference_kind = self.reference_choice
        self.metrics_region = "all"  # foreground metrics are not defined on cine yet
        self.mask = None  # a new series: the k-t mask is drawn again
        self.frame = 0
        self.set_frame(0)

    def reload_reference(self) -> None:
        if self.volume is not None:
            _, self.cine_reference = self.read_slice(self.volume, self.volume.slice_index)
            self.set_frame(self.frame)

    def set_frame(self, frame: int) -> int:
        """Show frame ``frame`` (wrapped into the series); returns it."""
        if self.cine_reference is None:
            return 0
        self.frame = int(frame) % int(self.cine_reference.shape[0])
        self.reference = self.cine_reference[self.frame]
        return self.frame

    def frame_image(self, image: np.ndarray) -> np.ndarray:
        """The current frame of a ``(T, h, w)`` image (2-D images pass through)."""
        return image[self.frame] if np.ndim(image) == 3 else image

    def reference_title(self) -> str:
        kind = self.reference_kind or self.reference_choice
        name = {"rss": "RSS", "sense": "SENSE"}.get(kind, kind)
        return f"reference ({name} per frame)<br>frame {self.frame} / {self.frames - 1}"

    def metrics_note(self) -> str:
        data_range = float(self.cine_reference.max()) if self.cine_reference is not None else 0.0
        return (
            f"{self.reference_description()}, per frame; PSNR/SSIM/NMSE over the series "
            "(fastMRI per-volume, frames stacked as slices) on |image|, data_range = max(reference "
            f"series) = {data_range:.4g}; PSNR per frame with the same data_range"
        )

    # ----- k-t mask -----------------------------------------------------------------------------
    def make_mask(self, spec) -> None:
        """Draw the ``(T, H, W)`` k-t mask of ``spec`` (kind random or equispaced; raises
        MaskError otherwise, the previous mask stays)."""
        from mriviewer.core.physics.kt_masks import make_kt_mask

        if self.kspace is None:
            raise MaskError("open a cine file first")
        t, _, h, w = self.kspace.shape
        self.mask = KtMask(make_kt_mask(spec, t, (h, w)), spec)
        self.mask_kind = spec.kind
        self.mask_file = None

    def use_data_sampling(self) -> None:
        raise MaskError("cine series are fully sampled here: draw a random or equispaced k-t mask")

    def set_mask_array(self, array: np.ndarray, source_file: str | None = None) -> None:
        raise MaskError("k-t masks are drawn from the mask panel's settings (random / equispaced)")

    def load_mask(self, path: str | Path) -> None:
        raise MaskError("loading k-t masks is not supported yet")

    def save_mask(self, path: str | Path) -> None:
        from mriviewer.core.files import atomic_write_path

        if self.mask is None:
            raise MaskError("no mask yet: open a file first")
        with atomic_write_path(Path(path)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, self.mask.array, allow_pickle=False)

    def effective_mask(self) -> np.ndarray | None:
        return None if self.mask is None else self.mask.array

    def achieved(self) -> tuple[float, int, int]:
        arr = self.mask.array
        sampled = int(arr.sum())
        return arr.size / max(sampled, 1), sampled, int(arr.size)

    def acceleration_per_frame(self) -> list[float]:
        if self.mask is None:
            return []
        return [float(f.size / max(int(f.sum()), 1)) for f in self.mask.array]

    def mask_note(self) -> str:
        per = self.acceleration_per_frame()
        if not per:
            return ""
        if max(per) - min(per) < 1e-6:
            return f"R per frame: {per[0]:.2f} in each of the {len(per)} frames"
        return "R per frame: " + " ".join(f"{r:.1f}" for r in per)

    def acs_band(self) -> tuple[int, int] | None:
        return None

    def set_acs_band(self, c0: int, c1: int) -> bool:
        return False

    def edit_mask(self, row: int, col: int, add: bool) -> bool:
        raise MaskError("k-t masks are not edited by hand yet")

    def mask_description(self) -> str:
        if self.mask is None:
            return "no mask"
        spec = self.mask.spec
        return (
            f"k-t {spec.kind} R {spec.acceleration:g} per frame, centre fraction "
            f"{spec.center_fraction:g}, seed {spec.seed}, {self.frames} frames, achieved R "
            f"{self.mask.achieved_acceleration:.2f}"
        )

    # ----- runs ---------------------------------------------------------------------------------
    no_data_message = "open a cine file first"

    def run_inputs(self) -> tuple[np.ndarray, np.ndarray, str, bool | None]:
        """The k-t mask, the reference series, metrics over the whole image, fully sampled."""
        return self.mask.array.copy(), self.cine_reference, "all", True

    def apply(self, message: tuple) -> None:
        if message[0] == "prepared":
            info = message[1]
            self.reference_kind = info.get("reference_kind")
            if info.get("reference") is not None:
                self.cine_reference = np.asarray(info["reference"], dtype=np.float32)
                self.set_frame(self.frame)
            self.run_warnings = list(info.get("warnings") or [])
            return
        super().apply(message)

    # ----- per frame and temporal views ---------------------------------------------------------
    def series(self, key: str, iteration: int) -> np.ndarray | None:
        """``(T, h, w)`` of ``key`` at its latest iteration <= ``iteration`` (REFERENCE: the
        reference series); None before its first iterate."""
        if key == REFERENCE:
            return self.cine_reference
        trace = self.traces.get(key)
        idx = None if trace is None else trace.index_at(iteration)
        return None if idx is None else trace.images[idx]

    def frame_psnr(self, key: str, iteration: int) -> list[float]:
        """PSNR per frame (dB) of ``key`` at ``iteration`` ([] before its first iterate)."""
        trace = self.traces.get(key)
        idx = None if trace is None else trace.index_at(iteration)
        if idx is None:
            return []
        return [float(v) for v in trace.metrics[idx].get("psnr_per_frame", [])]

    def temporal_profile(self, key: str, iteration: int, row: int) -> np.ndarray | None:
        """``(T, w)`` magnitude along image row ``row`` over the frames (an x-t image)."""
        series = self.series(key, iteration)
        if series is None:
            return None
        row = int(np.clip(row, 0, series.shape[1] - 1))
        return np.abs(series[:, row, :]).astype(np.float32)

    # ----- provenance ---------------------------------------------------------------------------
    def provenance(self, view: dict[str, Any], out_path: Path | None = None) -> dict[str, Any]:
        from mriviewer.core.figures import sha256_file

        info: dict[str, Any] = {"mriviewer": __version__, "dynamic": True}
        if self.volume is not None:
            info["file"] = {
                "path": str(self.volume.path),
                "sha256": sha256_file(self.volume.path),
                "format": self.volume.format,
            }
            info["slice"] = self.volume.slice_index
        info["frames"] = self.frames
        info["frame"] = self.frame
        if self.mask is not None:
            info["mask"] = {
                "spec": self.mask.spec.to_dict(),
                "shape": list(self.mask.shape),
                "achieved_acceleration": self.mask.achieved_acceleration,
                "acceleration_per_frame": self.acceleration_per_frame(),
            }
        iteration = view.get("iteration", self.max_iteration())
        methods = []
        for key, trace in self.traces.items():
            entry: dict[str, Any] = {"name": key, "label": trace.label, "settings": trace.settings}
            entry["complete"] = trace.complete
            idx = trace.index_at(iteration)
            if idx is not None:
                entry["iteration"] = trace.iterations[idx]
                entry["metrics"] = trace.metrics[idx]
            methods.append(entry)
        info["methods"] = methods
        info["ground_truth"] = True
        info["reference"] = self.reference_kind
        info["reference_definition"] = self.reference_description() + " (per frame)"
        info["metrics"] = (
            "PSNR/SSIM/NMSE over the series (fastMRI per-volume, frames stacked as slices); "
            "psnr_per_frame with the series' data_range"
        )
        info["warnings"] = list(self.run_warnings)
        for key in ("device", "display", "levels", "error_levels"):
            info[key] = view.get(key)
        info["iteration"] = iteration
        return info


def gif_frames(columns: list[np.ndarray], levels: tuple[float, float], gap: int = 2) -> np.ndarray:
    """``(T, h, sum w + gaps)`` uint8: the ``(T, h, w)`` real arrays side by side, windowed to
    ``levels`` (the same for all)."""
    if not columns:
        raise MriViewerError("nothing to animate: no panes")
    lo, hi = float(levels[0]), float(levels[1])
    span = hi - lo if hi > lo else 1.0
    t, h = columns[0].shape[:2]
    parts = []
    for i, col in enumerate(columns):
        if col.shape[:2] != (t, h):
            raise MriViewerError(f"pane {i} has shape {col.shape}, expected ({t}, {h}, w)")
        if i:
            parts.append(np.zeros((t, h, gap), dtype=np.uint8))
        parts.append((np.clip((col - lo) / span, 0.0, 1.0) * 255).round().astype(np.uint8))
    return np.concatenate(parts, axis=2)


def write_cine_gif(
    path: str | Path,
    columns: list[np.ndarray],
    levels: tuple[float, float],
    fps: float = 8.0,
    sidecar: dict[str, Any] | None = None,
) -> Path:
    """Write the panes ``columns`` (``(T, h, w)`` real each) as an animated GIF looping at
    ``fps`` frames per second; ``sidecar`` goes to ``<path>.json``. Raises MriViewerError."""
    import imageio.v3 as iio

    from mriviewer.core.files import atomic_write_path, atomic_write_text

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise MriViewerError("the animation export needs a .gif file name", path)
    # RGB frames: with grayscale ones Pillow's reader switches modes midway (P to L fails)
    frames = np.repeat(gif_frames(columns, levels)[..., None], 3, axis=-1)
    try:
        with atomic_write_path(path) as tmp:
            iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / max(fps, 0.1), loop=0)
    except OSError as exc:
        raise MriViewerError(f"cannot write {path}: {exc}", path) from exc
    if sidecar is not None:
        atomic_write_text(path.with_name(path.name + ".json"), json.dumps(sidecar, indent=2))
    return path
