"""Exports for other tools: the one export path of the app and the CLI (Qt-free).

It starts with the reconstruction writers; figures and metrics are to follow. Every write is
atomic (:func:`mriviewer.core.io.atomic.atomic_write_path`): a failed export leaves no partial
file and never clobbers an existing one.

:func:`write_reconstruction` writes one ``(h, w)`` complex image in original units, choosing the
format by the file name:

- ``.h5``: the one reconstruction layout of :func:`write_recon_h5` (``recon`` and the app):
  ``reconstruction`` ``(1, h, w)`` float32 magnitude, ``reconstruction_complex``
  ``(1, h, w)`` complex64, ``mask`` uint8 and every ``attrs`` item as a file attribute.
- ``.npy``: the ``(h, w)`` complex64 image.
- ``.dcm``: one single-frame DICOM image (Explicit VR Little Endian, 128-byte preamble). The
  magnitude is stored as uint16 with RescaleSlope (= max / 65535) and RescaleIntercept 0, so
  ``stored * slope`` gives the original units within half a slope. The SOP class is **MR Image
  Storage** when the k-space file's header gives the pixel spacing (field of view / matrix):
  PixelSpacing, SliceThickness (the z field of view of a 2-D acquisition) and a nominal axial
  ImageOrientationPatient / ImagePositionPatient (image centre at the origin), because none of
  the sources read here records the patient orientation; ImageComments says so. Without a known
  spacing it is **Secondary Capture Image Storage**, whose IOD has no image-plane module, so the
  geometry is omitted rather than invented. SeriesDescription names the method and settings
  (64 characters at most), ImageComments holds the provenance summary (method, settings,
  reference convention, mask, achieved R, source, slice). Patient name and ID stay empty: the
  k-space sources carry no patient identifiers. New UIDs for study, series, instance and frame
  of reference. dicom3tools' ``dciodvfy`` finds no errors; it warns that the MR IOD does not
  define RescaleSlope/Intercept (a standard extension that pydicom, dcm2niix and viewers apply).
- ``.nii`` / ``.nii.gz``: a NIfTI-1 image ``(h, w, 1)``, float32 magnitude in original units
  (complex64 with ``complex_values=True``), xyzt units mm / s, ``descrip`` with the method and
  reference convention, and the full ``attrs`` as JSON in a comment extension. The affine is
  ``diag(spacing_x, spacing_y, slice_thickness)`` with the image centre at the origin where the
  header gives the spacing (the same nominal geometry as the DICOM file), the identity otherwise.

:func:`write_cine_reconstruction` writes a ``(T, h, w)`` cine (2-D + time) series (``recon`` on a
cine file), choosing the format by the file name (:data:`CINE_RECON_SUFFIXES`):

- ``.h5``: the same layout with a frames axis (:func:`write_recon_h5`: ``reconstruction``
  ``(1, T, h, w)``, ``mask`` ``(T, H, W)``, attributes ``dynamic`` and ``frames``).
- ``.npy``: the ``(T, h, w)`` complex64 series.
- ``.nii`` / ``.nii.gz``: a 4-D NIfTI-1 image ``(h, w, 1, T)`` (x, y, z, t), float32 magnitude,
  the 2-D geometry and a time spacing (pixdim[4], seconds) from the file where known, else 1.
- ``.dcm``: a DICOM series of single-frame images, one per frame, as scanners store cine
  (``NAME_frame000.dcm`` ... beside ``NAME.dcm``, which is not written itself): one
  SeriesInstanceUID, InstanceNumber and TemporalPositionIdentifier ``t + 1``,
  NumberOfTemporalPositions ``T``, TriggerTime ``t x`` the frame interval (ms) where the file
  gives it, and one RescaleSlope for the whole series so that frames compare. ``mriviewer
  recon`` also writes ``.gif`` / ``.mp4`` animations with
  :func:`mriviewer.core.cine_session.write_cine_animation` (not imported here: that module
  imports the session, which imports this one).

Array axes: axis 0 of the image (H, rows) is the header's x (readout), axis 1 (W, columns) its
y, exactly as :func:`mriviewer.core.io.fastmri.parse_ismrmrd_header` orders them. DICOM
PixelSpacing is ``[row spacing, column spacing]`` = ``[spacing along axis 0, along axis 1]``.

:func:`write_reconstructions` writes several methods' images of one export (the app's File >
Export reconstructions): one file per method, ``<stem>_<method><suffix>`` beside the chosen
name; for DICOM the files share one study and frame of reference, one series per method.
"""

from __future__ import annotations

import datetime
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer import __version__
from mriviewer.core.errors import KSpaceWriteError
from mriviewer.core.io.atomic import atomic_write_path

RECON_SUFFIXES = (".h5", ".npy", ".dcm", ".nii", ".nii.gz")
#: what :func:`write_cine_reconstruction` writes (no DICOM: one line says so)
CINE_RECON_SUFFIXES = (".h5", ".npy", ".nii", ".nii.gz", ".dcm")
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def recon_suffix(path: str | Path, suffixes: tuple[str, ...] = RECON_SUFFIXES) -> str | None:
    """The export format suffix of ``path`` among ``suffixes`` (``.nii.gz`` counts as one), or
    None."""
    name = Path(path).name.lower()
    return next((s for s in sorted(suffixes, key=len, reverse=True) if name.endswith(s)), None)


@dataclass
class Geometry:
    """In-plane pixel spacing (mm, along image axes 0 and 1), slice thickness and the lines that
    say where they came from (or that they are unknown)."""

    spacing_mm: tuple[float, float] | None = None
    slice_thickness_mm: float | None = None
    notes: list[str] = field(default_factory=list)


def geometry_from_header(header: dict[str, Any] | None, shape: tuple[int, int]) -> Geometry:
    """Pixel spacing of an ``(h, w)`` = ``shape`` reconstruction from a KSpaceVolume header.

    The image is a centre crop of the inverse FFT of the encoded grid, so its pixels measure
    ``encoded_fov_mm / encoded_matrix``; where only the recon space is known (or the image is
    the recon matrix exactly) ``recon_fov_mm / recon_matrix`` is used. A disagreement of more
    than 1 % between the two is reported as a note. Unknown spacing gives ``spacing_mm=None``
    and a note.
    """
    header = header or {}
    enc = _per_axis(header.get("encoded_fov_mm"), header.get("encoded_matrix"))
    rec = _per_axis(header.get("recon_fov_mm"), header.get("recon_matrix"))
    if rec is not None and list(header.get("recon_matrix") or []) != list(shape):
        rec = None  # the recon FOV describes the recon matrix, not this image
    geo = Geometry(spacing_mm=enc or rec)
    if enc is not None and rec is not None and not np.allclose(enc, rec, rtol=0.01):
        geo.notes.append(
            f"the header's encoded and recon spaces disagree on the pixel spacing "
            f"({enc[0]:.4g} x {enc[1]:.4g} vs {rec[0]:.4g} x {rec[1]:.4g} mm); "
            f"the encoded space's is written"
        )
    thickness = header.get("slice_thickness_mm")
    if thickness:
        geo.slice_thickness_mm = float(thickness)
    if geo.spacing_mm is None:
        geo.notes.append(
            "pixel spacing unknown (the file's header gives no field of view): none written"
        )
    return geo


def _per_axis(fov: Any, matrix: Any) -> tuple[float, float] | None:
    try:
        fx, fy = (float(v) for v in fov)
        mx, my = (int(v) for v in matrix)
    except (TypeError, ValueError):
        return None
    if min(fx, fy) <= 0 or min(mx, my) <= 0:
        return None
    return fx / mx, fy / my


@dataclass
class ExportResult:
    """What an export wrote: the files and lines worth telling the user (geometry notes)."""

    paths: list[Path]
    notes: list[str] = field(default_factory=list)
    description: str = ""


def write_reconstruction(
    path: str | Path,
    image: np.ndarray,
    *,
    attrs: dict[str, Any] | None = None,
    mask: np.ndarray | None = None,
    header: dict[str, Any] | None = None,
    complex_values: bool = False,
    study: dict[str, str] | None = None,
    series_number: int = 1,
) -> ExportResult:
    """Write one ``(h, w)`` complex reconstruction (original units) to ``path`` by its suffix.

    attrs: provenance (keys of ``mriviewer recon``'s ``.h5``: ``method``, ``method_settings``,
    ``mask``, ``acceleration``, ``reference``, ``source``, ``slice``, ...); all of them go into
    ``.h5``, a summary into DICOM / NIfTI. mask: ``(H, W)`` sampling (``.h5`` only). header:
    the KSpaceVolume header (field of view, matrix, slice thickness). complex_values: NIfTI
    complex64 instead of float32 magnitude. study: shared DICOM UIDs of a multi-file export
    (``study``, ``frame``). Raises :class:`KSpaceWriteError` on an unknown suffix or I/O error.
    """
    path = Path(path)
    image = np.asarray(image)
    if image.ndim != 2:
        raise KSpaceWriteError(f"a reconstruction to export is (h, w), got {image.shape}", path)
    attrs = dict(attrs or {})
    suffix = recon_suffix(path)
    try:
        if suffix == ".npy":
            with atomic_write_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, image.astype(np.complex64), allow_pickle=False)
            return ExportResult([path], description="NumPy complex64")
        if suffix == ".h5":
            _write_h5(path, image.astype(np.complex64), mask, attrs)
            return ExportResult([path], description="HDF5")
        if suffix == ".dcm":
            geo = geometry_from_header(header, image.shape)
            desc = _write_dicom(path, image, attrs, header or {}, geo, study, series_number)
            return ExportResult([path], geo.notes, desc)
        if suffix in (".nii", ".nii.gz"):
            geo = geometry_from_header(header, image.shape)
            if geo.spacing_mm is None:
                geo.notes[-1] = (
                    "pixel spacing unknown (no field of view in the header): identity affine"
                )
            desc = _write_nifti(path, image, attrs, geo, complex_values)
            return ExportResult([path], geo.notes, desc)
    except OSError as exc:
        raise KSpaceWriteError(f"cannot write the reconstruction ({exc})", path) from exc
    raise KSpaceWriteError(
        f"reconstructions export to {', '.join(RECON_SUFFIXES)}; got {path.name!r}", path
    )


def frame_interval_s(header: dict[str, Any]) -> float | None:
    """The time between frames in seconds from the file's ``frame_interval_s`` or
    ``frame_interval_ms`` (header or HDF5 attribute), else None (unknown)."""
    for where in (header, header.get("attrs") or {}):
        for key, scale in (("frame_interval_s", 1.0), ("frame_interval_ms", 1e-3)):
            try:
                value = float(where[key]) * scale
            except (KeyError, TypeError, ValueError):
                continue
            if value > 0 and np.isfinite(value):
                return value
    return None


def write_cine_reconstruction(
    path: str | Path,
    series: np.ndarray,
    *,
    attrs: dict[str, Any] | None = None,
    mask: np.ndarray | None = None,
    header: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    time_spacing_s: float | None = None,
    study: dict[str, str] | None = None,
    series_number: int = 1,
) -> ExportResult:
    """Write a ``(T, h, w)`` complex cine series (original units) to ``path`` by its suffix
    (module docstring; :data:`CINE_RECON_SUFFIXES`).

    attrs: provenance as for :func:`write_reconstruction` (all of it into ``.h5``, the NIfTI
    comment extension). mask: the ``(T, H, W)`` k-t sampling
    (``.h5``). metrics: the series' metrics (``.h5`` ``method_metrics``). time_spacing_s: the
    frame interval for NIfTI and DICOM's TriggerTime (None: unknown, a note says so). study /
    series_number: shared DICOM UIDs and this series' number (as :func:`write_reconstruction`).
    Raises
    :class:`KSpaceWriteError` (one line) for another suffix or an I/O error."""
    path = Path(path)
    series = np.asarray(series)
    if series.ndim != 3:
        raise KSpaceWriteError(f"a cine series to export is (T, h, w), got {series.shape}", path)
    attrs = dict(attrs or {})
    suffix = recon_suffix(path, CINE_RECON_SUFFIXES)
    if suffix is None:
        raise KSpaceWriteError(
            f"a cine series exports to {', '.join(CINE_RECON_SUFFIXES)}; got {path.name!r}",
            path,
        )
    t, h, w = series.shape
    try:
        if suffix == ".dcm":
            return _write_cine_dicom(
                path, series, attrs, header or {}, time_spacing_s, study, series_number
            )
        if suffix == ".npy":
            with atomic_write_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, series.astype(np.complex64), allow_pickle=False)
            return ExportResult([path], description=f"NumPy complex64 ({t}, {h}, {w})")
        if suffix == ".h5":
            name = str(attrs.get("method", "reconstruction"))
            settings = (
                json_value(attrs.get("method_settings")) if "method_settings" in attrs else None
            )
            result = {"final": series.astype(np.complex64), "metrics": metrics}
            if settings is not None:
                result["settings"] = settings
            write_recon_h5(path, {name: result}, mask=mask, attrs=attrs)
            return ExportResult([path], description=f"HDF5, {t} frames of {h} x {w}")
        if suffix in (".nii", ".nii.gz"):
            geo = geometry_from_header(header, (h, w))
            if geo.spacing_mm is None:
                geo.notes[-1] = (
                    "pixel spacing unknown (no field of view in the header): identity affine"
                )
            if time_spacing_s is None:
                geo.notes.append("frame interval unknown (none in the file): time spacing 1 s")
            desc = _write_nifti(path, series, attrs, geo, False, time_spacing_s)
            return ExportResult([path], geo.notes, desc)
    except OSError as exc:
        raise KSpaceWriteError(f"cannot write the reconstruction ({exc})", path) from exc
    raise AssertionError(suffix)  # every suffix of CINE_RECON_SUFFIXES is handled above


def write_reconstructions(
    path: str | Path,
    images: dict[str, np.ndarray],
    attrs: dict[str, dict[str, Any]],
    *,
    header: dict[str, Any] | None = None,
    complex_values: bool = False,
    time_spacing_s: float | None = None,
) -> ExportResult:
    """Several methods' ``(h, w)`` images of one case as DICOM or NIfTI, one file per method
    (``(T, h, w)`` cine series: :func:`write_cine_reconstruction` per method, a DICOM series
    of one file per frame or a 4-D NIfTI, with ``time_spacing_s``).

    ``path`` = ``dir/stem.dcm`` writes ``dir/stem_<method>.dcm`` for each key of ``images`` (in
    order; the method name made file-safe, numbered where two collide). DICOM files share one
    StudyInstanceUID and FrameOfReferenceUID, each method its own series (SeriesNumber in
    order). ``attrs[key]`` is that method's provenance (see :func:`write_reconstruction`).
    """
    from pydicom.uid import generate_uid

    path = Path(path)
    suffix = recon_suffix(path)
    if suffix not in (".dcm", ".nii", ".nii.gz"):
        raise KSpaceWriteError(
            f"one file per method is written for .dcm, .nii or .nii.gz; got {path.name!r}", path
        )
    stem = path.name[: -len(suffix)]
    study = {"study": generate_uid(), "frame": generate_uid()}
    result = ExportResult([])
    used: set[str] = set()
    for number, (key, image) in enumerate(images.items(), start=1):
        name = method_slug(key)
        if name in used:
            name = f"{name}-{number}"
        used.add(name)
        cine = np.ndim(image) == 3  # a (T, h, w) series: a DICOM series or a 4-D NIfTI
        writer = write_cine_reconstruction if cine else write_reconstruction
        extra = {"time_spacing_s": time_spacing_s} if cine else {"complex_values": complex_values}
        one = writer(
            path.with_name(f"{stem}_{name}{suffix}"),
            image,
            attrs=attrs.get(key, {"method": key}),
            header=header,
            study=study,
            series_number=number,
            **extra,
        )
        result.paths += one.paths
        result.notes += [n for n in one.notes if n not in result.notes]
        result.description = one.description
    return result


def method_slug(key: str) -> str:
    """A file-name-safe method name: ``model:/x/modl.safetensors`` -> ``model-modl``."""
    if key.startswith("model:"):
        key = "model-" + Path(key[len("model:") :]).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", key).strip("-.") or "method"


# ----- summaries -----------------------------------------------------------------------------
def json_value(value: Any) -> Any:
    """An HDF5 attribute as stored by these writers: JSON text (str or bytes) decoded, anything
    else as it is."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _settings_text(attrs: dict[str, Any], compact: bool = False) -> str:
    """``k=v`` per scalar setting; an ``"auto"`` setting shows what it resolved to
    (``lamda=auto(0.003)``, from ``settings["resolved"]``). ``compact``: scalars only, no
    paths (a model: ``sha256=... unrolls=8``)."""
    settings = json_value(attrs.get("method_settings", {}))
    if isinstance(settings, dict):
        resolved = settings.get("resolved")
        resolved = resolved if isinstance(resolved, dict) else {}
        return " ".join(
            f"{k}=auto({resolved[k]})" if v == "auto" and k in resolved else f"{k}={v}"
            for k, v in settings.items()
            if k != "resolved"
            # compact (a DICOM SeriesDescription, 64 characters): nested records (a model's
            # architecture) and file paths are left to the comments
            and not (compact and (k == "path" or isinstance(v, dict | list)))
        )
    return str(settings or "")


def _mask_text(attrs: dict[str, Any]) -> str:
    mask = json_value(attrs.get("mask"))
    if isinstance(mask, dict):
        spec = mask.get("spec", mask)
        if isinstance(spec, dict):
            kind = spec.get("kind", "?")
            bits = [
                f"{k}={v}"
                for k, v in spec.items()
                if k != "kind" and not isinstance(v, dict | list)
            ]
            return f"{kind}" + (f" ({', '.join(bits)})" if bits else "")
        return str(spec)
    return "" if mask is None else str(mask)


def summary_lines(attrs: dict[str, Any]) -> list[str]:
    """The provenance summary (one fact a line) that DICOM ImageComments carries."""
    lines = [f"mriviewer {__version__} reconstruction"]
    method = attrs.get("method", "?")
    settings = _settings_text(attrs)
    lines.append(f"method: {method}" + (f" ({settings})" if settings else ""))
    reference = attrs.get("reference") or "none"
    definition = str(attrs.get("reference_definition") or "").removeprefix("reference: ")
    lines.append(f"reference: {reference}" + (f" - {definition}" if definition else ""))
    mask = _mask_text(attrs)
    if mask:
        lines.append(f"mask: {mask}")
    accel = attrs.get("acceleration", attrs.get("achieved_acceleration"))
    if accel is not None:
        lines.append(f"achieved R: {float(accel):.2f}")
    for key in ("source", "slice", "iterations"):
        if attrs.get(key) is not None:
            lines.append(f"{key}: {attrs[key]}")
    return lines


# ----- formats -------------------------------------------------------------------------------
def _write_h5(path: Path, image: np.ndarray, mask: np.ndarray | None, attrs: dict) -> None:
    name = str(attrs.get("method", "reconstruction"))
    result = {"final": image}
    for key, attr in (("metrics", "metrics"), ("settings", "method_settings")):
        if attrs.get(attr) is not None:  # recon's JSON text: the per-method record has it too
            value = attrs[attr]
            result[key] = json_value(value) if isinstance(value, str) else value
    write_recon_h5(path, {name: result}, mask=mask, attrs=attrs)


#: version of the reconstruction HDF5 layout (:func:`write_recon_h5`)
RECON_H5_LAYOUT = 2


def write_recon_h5(
    path: str | Path,
    results: dict[str, dict[str, Any]],
    reference: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write reconstructions in the one HDF5 layout of ``mriviewer recon`` and the app.

    results: ``{method: {"final": (h, w) complex, "iterations": (K, h, w) complex (optional),
    "iteration_numbers": (K,) (optional), "metrics": dict (optional), "settings": dict
    (optional)}}`` in original units. Layout (fastMRI's dataset names first)::

        reconstruction          (M, h, w) float32   |final| of each method, in "methods" order
        reconstruction_complex  (M, h, w) complex64 final images
        mask                    (H, W) uint8        sampling used (when given)
        reference               (h, w) float32      what metrics were measured against (if any)
        iterations/<i>/images             (K, h, w) complex64   every iterate (when given)
        iterations/<i>/iteration_numbers  (K,) int
        attrs: layout (= 2), methods (JSON list), method_metrics / method_settings_all (JSON
               {method: ...}), and every ``attrs`` item (JSON-encoded where nested)

    A cine (2-D + time) series has a frames axis after the methods axis: "final" ``(T, h, w)``,
    ``reconstruction`` / ``reconstruction_complex`` ``(M, T, h, w)``, ``mask`` ``(T, H, W)``
    (the k-t sampling), ``reference`` ``(T, h, w)``, iterates ``(K, T, h, w)``, and the
    attributes ``dynamic = True`` and ``frames = T``; per-frame metrics are lists in the
    metrics (``psnr_per_frame``, ``ssim_per_frame``, or ``dc_residual_per_frame`` without
    ground truth: ``mriviewer recon``).

    Read back with :func:`read_recon_h5`. Atomic; raises KSpaceWriteError on failure."""
    import h5py

    path = Path(path)
    names = list(results)
    if not names:
        raise KSpaceWriteError("no reconstruction to write", path)
    finals = np.stack([np.asarray(results[n]["final"], dtype=np.complex64) for n in names])
    try:
        with atomic_write_path(path) as tmp, h5py.File(tmp, "w") as h5:
            h5.create_dataset("reconstruction", data=np.abs(finals).astype(np.float32))
            h5.create_dataset("reconstruction_complex", data=finals)
            if mask is not None:
                h5.create_dataset("mask", data=np.asarray(mask).astype(np.uint8))
            if reference is not None:
                h5.create_dataset("reference", data=np.asarray(reference, dtype=np.float32))
            for i, name in enumerate(names):
                its = results[name].get("iterations")
                if its is not None:
                    group = h5.create_group(f"iterations/{i}")
                    group.create_dataset("images", data=np.asarray(its, dtype=np.complex64))
                    numbers = results[name].get("iteration_numbers", np.arange(len(its)))
                    group.create_dataset("iteration_numbers", data=np.asarray(numbers))
                    group.attrs["method"] = name
            h5.attrs["layout"] = RECON_H5_LAYOUT
            if finals.ndim == 4:  # (M, T, h, w): a cine series
                h5.attrs["dynamic"] = True
                h5.attrs["frames"] = int(finals.shape[1])
            h5.attrs["methods"] = json.dumps(names)
            h5.attrs["method_metrics"] = json.dumps(
                {n: results[n].get("metrics") for n in names}, default=float
            )
            h5.attrs["method_settings_all"] = json.dumps(
                {n: results[n].get("settings") for n in names}, default=str
            )
            for key, value in (attrs or {}).items():
                h5.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    except OSError as exc:
        raise KSpaceWriteError(f"cannot write the reconstructions ({exc})", path) from exc
    return path


def read_recon_h5(path: str | Path) -> dict[str, Any]:
    """Read a file of :func:`write_recon_h5` (``recon`` or the app): ``{"methods": {name:
    {"final", "iterations", "iteration_numbers", "metrics", "settings"}}, "mask", "reference",
    "frames", "attrs"}``; ``frames`` is T for a cine series (``final`` ``(T, h, w)``), else
    None. Raises KSpaceReadError for a file of another layout."""
    import h5py

    from mriviewer.core.errors import KSpaceReadError

    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            if "reconstruction_complex" not in h5 or "methods" not in h5.attrs:
                raise KSpaceReadError("not a mriviewer reconstruction file", path)
            names = json.loads(h5.attrs["methods"])
            metrics = json.loads(h5.attrs.get("method_metrics", "{}"))
            settings = json.loads(h5.attrs.get("method_settings_all", "{}"))
            finals = h5["reconstruction_complex"][()]
            methods: dict[str, dict[str, Any]] = {}
            for i, name in enumerate(names):
                entry = {
                    "final": finals[i],
                    "metrics": metrics.get(name),
                    "settings": settings.get(name),
                }
                if f"iterations/{i}" in h5:
                    entry["iterations"] = h5[f"iterations/{i}/images"][()]
                    entry["iteration_numbers"] = h5[f"iterations/{i}/iteration_numbers"][()]
                methods[name] = entry
            return {
                "methods": methods,
                "mask": h5["mask"][()].astype(bool) if "mask" in h5 else None,
                "reference": h5["reference"][()] if "reference" in h5 else None,
                "frames": int(finals.shape[1]) if finals.ndim == 4 else None,
                "attrs": {k: v for k, v in h5.attrs.items()},
            }
    except OSError as exc:
        raise KSpaceReadError(f"cannot read the reconstruction file ({exc})", path) from exc


def _ds(value: float) -> Any:
    from pydicom.valuerep import DSfloat

    return DSfloat(float(value), auto_format=True)


def cine_dicom_paths(path: str | Path, frames: int) -> list[Path]:
    """The files a cine series written to ``path`` (``NAME.dcm``) occupies:
    ``NAME_frame000.dcm`` ... one per frame (three digits, more when T > 1000)."""
    path = Path(path)
    digits = max(3, len(str(frames - 1)))
    return [path.with_name(f"{path.stem}_frame{t:0{digits}d}.dcm") for t in range(frames)]


def _write_cine_dicom(
    path: Path,
    series: np.ndarray,
    attrs: dict[str, Any],
    header: dict[str, Any],
    time_spacing_s: float | None,
    study: dict[str, str] | None = None,
    series_number: int = 1,
) -> ExportResult:
    """One single-frame DICOM image per frame in one series (module docstring)."""
    from pydicom.uid import generate_uid

    t, h, w = series.shape
    geo = geometry_from_header(header, (h, w))
    study = study or {"study": generate_uid(), "frame": generate_uid()}
    magnitude = np.abs(np.nan_to_num(series))
    cine = {
        "uid": generate_uid(),
        "frames": t,
        "peak": float(magnitude.max()) if magnitude.size else 0.0,
        "interval_ms": None if time_spacing_s is None else 1000.0 * float(time_spacing_s),
    }
    paths = cine_dicom_paths(path, t)
    desc = ""
    for frame, out in enumerate(paths):
        desc = _write_dicom(
            out,
            series[frame],
            attrs,
            header,
            geo,
            study,
            series_number,
            cine=cine | {"frame": frame},
        )
    notes = list(geo.notes)
    if time_spacing_s is None:
        notes.append("frame interval unknown (none in the file): no TriggerTime written")
    kind = desc.split(" uint16")[0]
    return ExportResult(
        paths, notes, f"{kind} series, {t} files {paths[0].name} ... {paths[-1].name}"
    )


def _write_dicom(
    path: Path,
    image: np.ndarray,
    attrs: dict[str, Any],
    header: dict[str, Any],
    geo: Geometry,
    study: dict[str, str] | None,
    series_number: int,
    cine: dict[str, Any] | None = None,
) -> str:
    """cine: ``{"uid", "frame", "frames", "peak", "interval_ms"}`` for one frame of a cine
    series (shared series UID and rescale slope, temporal position, trigger time)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    magnitude = np.abs(np.nan_to_num(image)).astype(np.float64)
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if cine is not None:
        peak = float(cine["peak"])  # one slope for the series: frames compare
    slope = _ds(peak / 65535.0 if peak > 0 else 1.0)
    stored = np.clip(np.rint(magnitude / float(slope)), 0, 65535).astype(np.uint16)
    mr = geo.spacing_mm is not None
    sop_class = MR_IMAGE_STORAGE if mr else SECONDARY_CAPTURE_STORAGE
    study = study or {"study": generate_uid(), "frame": generate_uid()}
    instance = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"MRIVIEWER_{__version__}"[:16]
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    now = datetime.datetime.now()
    method = str(attrs.get("method", "reconstruction"))
    settings = _settings_text(attrs, compact=True)
    comments = summary_lines(attrs)
    if mr:
        comments.append(
            "geometry: pixel spacing from the k-space header; orientation and position nominal "
            "(axial, centred; the source records no patient orientation)"
        )
    else:
        comments.append("geometry: unknown (the k-space header gives no field of view)")

    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    # Patient: the k-space sources carry no identifiers, so none are written (type 2: empty).
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    # Study / series
    ds.StudyInstanceUID = study["study"]
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.StudyDescription = "mriviewer reconstructions"
    ds.Modality = "MR" if mr else "OT"
    ds.SeriesInstanceUID = generate_uid() if cine is None else cine["uid"]
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = (f"{method} {settings}".strip())[:64]
    ds.Laterality = ""  # type 2C: unknown here
    ds.Manufacturer = str(header.get("system", ""))[:64]
    ds.SoftwareVersions = f"mriviewer {__version__}"
    # Image
    ds.InstanceNumber = 1 if cine is None else int(cine["frame"]) + 1
    if cine is not None:
        comments.append(
            f"cine frame {cine['frame'] + 1} of {cine['frames']} (temporal position; index "
            f"{cine['frame']} of the series)"
        )
        ds.TemporalPositionIdentifier = int(cine["frame"]) + 1
        ds.NumberOfTemporalPositions = int(cine["frames"])
        if cine.get("interval_ms") is not None:
            ds.TriggerTime = _ds(cine["frame"] * cine["interval_ms"])
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.ImageType = ["DERIVED", "PRIMARY", "OTHER"] if mr else ["DERIVED", "SECONDARY"]
    ds.ImageComments = "\n".join(comments)[:10240]
    ds.BurnedInAnnotation = "NO"
    if mr:
        ds.FrameOfReferenceUID = study["frame"]
        ds.PatientPosition = ""  # type 2C for MR: the source does not record it
        ds.PositionReferenceIndicator = ""
        ds.ScanningSequence = "RM"  # research mode: the sequence is not known here
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = ""
        ds.EchoTime = ""
        ds.EchoTrainLength = ""
        if header.get("field_strength_t"):
            ds.MagneticFieldStrength = _ds(header["field_strength_t"])
        row_mm, col_mm = geo.spacing_mm
        rows, cols = image.shape
        ds.PixelSpacing = [_ds(row_mm), _ds(col_mm)]
        ds.SliceThickness = _ds(geo.slice_thickness_mm) if geo.slice_thickness_mm else ""
        # Nominal axial plane, the same as the NIfTI affine diag(sx, sy, sz) in RAS: axis 0
        # (down the rows) runs to patient left-to-right = -x in LPS, axis 1 to -y (anterior).
        ds.ImageOrientationPatient = [_ds(0), _ds(-1), _ds(0), _ds(-1), _ds(0), _ds(0)]
        ds.ImagePositionPatient = [
            _ds((rows - 1) / 2 * row_mm),
            _ds((cols - 1) / 2 * col_mm),
            _ds(0),
        ]
        ds.SliceLocation = _ds(0)
    else:
        ds.ConversionType = "WSD"  # workstation
        ds.RescaleType = "US"  # type 1C in SC's modality LUT: unspecified (original) units
        ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(n) for n in image.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _ds(0)
    ds.RescaleSlope = slope
    ds.WindowCenter = _ds(peak / 2 if peak > 0 else 0.5)
    ds.WindowWidth = _ds(peak if peak > 0 else 1.0)
    ds.PixelData = stored.tobytes()
    ds.LossyImageCompression = "00"
    with atomic_write_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    kind = "MR Image" if mr else "Secondary Capture"
    return f"DICOM {kind} {ds.Rows}x{ds.Columns} uint16, rescale slope {float(slope):.6g}"


def _write_nifti(
    path: Path,
    image: np.ndarray,
    attrs: dict[str, Any],
    geo: Geometry,
    complex_values: bool,
    time_spacing_s: float | None = None,
) -> str:
    """``(h, w)`` -> ``(h, w, 1)``; a ``(T, h, w)`` series -> 4-D ``(h, w, 1, T)`` with
    pixdim[4] = ``time_spacing_s`` (1 when None)."""
    import nibabel as nib

    data = image.astype(np.complex64) if complex_values else np.abs(image).astype(np.float32)
    series = data.ndim == 3
    data = np.moveaxis(data, 0, -1)[:, :, None] if series else data[:, :, None]
    shape = image.shape[-2:]
    affine = np.eye(4)
    zooms = [1.0, 1.0, 1.0]
    if geo.spacing_mm is not None:
        zooms = [*geo.spacing_mm, geo.slice_thickness_mm or 1.0]
        affine[:3, :3] = np.diag(zooms)
        affine[:2, 3] = [-(n - 1) / 2 * s for n, s in zip(shape, geo.spacing_mm, strict=True)]
    img = nib.Nifti1Image(data, affine)
    if series:
        img.header.set_zooms((*zooms, float(time_spacing_s or 1.0)))
    img.header.set_xyzt_units("mm", "sec")
    reference = attrs.get("reference") or "none"
    descrip = f"mriviewer {attrs.get('method', 'recon')} ref={reference}"
    accel = attrs.get("acceleration", attrs.get("achieved_acceleration"))
    if accel is not None:
        descrip += f" R={float(accel):.2f}"
    img.header["descrip"] = descrip.encode("ascii", errors="replace")[:79]
    text = json.dumps({k: json_value(v) for k, v in attrs.items()}, default=str)
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", text.encode("utf-8")))
    raw = img.to_bytes()
    if recon_suffix(path) == ".nii.gz":
        raw = gzip.compress(raw, mtime=0)
    with atomic_write_path(path) as tmp:
        tmp.write_bytes(raw)
    kind = "complex64" if complex_values else "float32 magnitude"
    if series:
        dt = float(time_spacing_s or 1.0)
        return f"NIfTI-1 {shape[0]}x{shape[1]}x1x{image.shape[0]} {kind}, time spacing {dt:g} s"
    return f"NIfTI-1 {image.shape[0]}x{image.shape[1]}x1 {kind}"
