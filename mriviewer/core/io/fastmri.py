"""fastMRI HDF5 reader and writer (``kspace``, ``reconstruction_rss|esc``, ``ismrmrd_header``)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mriviewer.core.errors import KSpaceReadError, KSpaceWriteError
from mriviewer.core.files import atomic_write_path
from mriviewer.core.images import center_crop  # noqa: F401 - re-exported (readers' API)
from mriviewer.core.io.base import KSpaceVolume, check_layout

REFERENCE_KEYS = ("reconstruction_rss", "reconstruction_esc")


def _xml_text(root: ET.Element, path: list[str]) -> str | None:
    node: ET.Element | None = root
    for tag in path:
        if node is None:
            return None
        node = next((c for c in node if c.tag.split("}")[-1] == tag), None)
    return None if node is None else (node.text or "").strip()


def parse_ismrmrd_header(xml: str | bytes) -> dict[str, Any]:
    """Matrix sizes, field of view and sequence facts from an ISMRMRD XML header.

    Returns keys ``encoded_matrix``, ``recon_matrix`` as ``(rows, cols)`` of the image = ``(x, y)`` of the header, exactly as
    fastMRI crops (matrixSize x runs along the readout, which is the image's first axis H),
    ``encoded_fov_mm`` / ``recon_fov_mm`` (x, y in mm), ``slice_thickness_mm`` (the z field of
    view of a 2-D acquisition), ``field_strength_t``, ``system``, ``sequence``,
    ``kspace_encoding_step_1_center`` / ``_maximum`` (the encoding limits fastMRI derives the
    zero padding from, see :mod:`mriviewer.core.physics.band`) where present.
    """
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8", errors="replace")
    root = ET.fromstring(xml)
    out: dict[str, Any] = {}
    enc = [c for c in root if c.tag.split("}")[-1] == "encoding"]
    if enc:
        e = enc[0]
        for space, key in (("encodedSpace", "encoded_matrix"), ("reconSpace", "recon_matrix")):
            x = _xml_text(e, [space, "matrixSize", "x"])
            y = _xml_text(e, [space, "matrixSize", "y"])
            if x and y:
                out[key] = [int(float(x)), int(float(y))]
        for limit in ("center", "maximum"):  # fastMRI derives the padding from these
            value = _xml_text(e, ["encodingLimits", "kspace_encoding_step_1", limit])
            if value:
                out[f"kspace_encoding_step_1_{limit}"] = int(float(value))
        fx = _xml_text(e, ["encodedSpace", "fieldOfView_mm", "x"])
        fy = _xml_text(e, ["encodedSpace", "fieldOfView_mm", "y"])
        if fx and fy:
            out["encoded_fov_mm"] = [float(fx), float(fy)]
        rfx = _xml_text(e, ["reconSpace", "fieldOfView_mm", "x"])
        rfy = _xml_text(e, ["reconSpace", "fieldOfView_mm", "y"])
        if rfx and rfy:
            out["recon_fov_mm"] = [float(rfx), float(rfy)]
        # A 2-D acquisition (one encoded partition): the z field of view is the slice thickness.
        fz = _xml_text(e, ["encodedSpace", "fieldOfView_mm", "z"])
        mz = _xml_text(e, ["encodedSpace", "matrixSize", "z"])
        if fz and float(fz) > 0 and (not mz or int(float(mz)) == 1):
            out["slice_thickness_mm"] = float(fz)
    field_t = _xml_text(root, ["acquisitionSystemInformation", "systemFieldStrength_T"])
    if field_t:
        out["field_strength_t"] = float(field_t)
    vendor = _xml_text(root, ["acquisitionSystemInformation", "systemVendor"])
    if vendor:
        out["system"] = vendor
    seq = _xml_text(root, ["sequenceParameters", "sequence_type"])
    if seq:
        out["sequence"] = seq
    return out


def make_ismrmrd_header(
    encoded_matrix: tuple[int, int],
    recon_matrix: tuple[int, int],
    fov_mm: tuple[float, float] = (220.0, 220.0),
) -> str:
    """A minimal ISMRMRD XML header with encoded/recon matrix sizes (rows, cols)."""
    # fastMRI convention: matrixSize x is the image's first axis (rows, readout), y the second.
    (ex, ey), (rx, ry) = encoded_matrix, recon_matrix
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
        "<encoding><trajectory>cartesian</trajectory>"
        f"<encodedSpace><matrixSize><x>{ex}</x><y>{ey}</y><z>1</z></matrixSize>"
        f"<fieldOfView_mm><x>{fov_mm[0]}</x><y>{fov_mm[1]}</y><z>5</z></fieldOfView_mm></encodedSpace>"
        f"<reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize>"
        f"<fieldOfView_mm><x>{fov_mm[0]}</x><y>{fov_mm[1]}</y><z>5</z></fieldOfView_mm></reconSpace>"
        "</encoding></ismrmrdHeader>"
    )


def is_fastmri(h5: h5py.File) -> bool:
    return "kspace" in h5


@dataclass
class H5KSpaceHeader:
    """What the fastMRI-style readers (2-D and cine) learn from an HDF5 file before reading
    any k-space: the ``kspace`` dataset's shape, the reference dataset's shape, the file's
    attributes, its ISMRMRD header XML and its ``mask`` dataset (cine layout only)."""

    shape: tuple[int, ...]
    ref_key: str | None
    ref_shape: tuple[int, ...] | None
    attrs: dict[str, Any]
    xml: Any
    mask: np.ndarray | None = None


def read_h5_header(
    path: Path, reference_keys: tuple[str, ...], missing: str, with_mask: bool = False
) -> H5KSpaceHeader:
    """Shapes, attributes and header of a k-space HDF5 file (``missing``: the error when it
    has no ``kspace``). Raises :class:`KSpaceReadError` for an unreadable file, a missing or
    non-dataset ``kspace`` or non-complex k-space."""
    try:
        with h5py.File(path, "r") as h5:
            if "kspace" not in h5:
                raise KSpaceReadError(missing, path)
            ds = h5["kspace"]
            if not isinstance(ds, h5py.Dataset):
                raise KSpaceReadError("'kspace' is a group, expected a dataset", path)
            shape, dtype = tuple(ds.shape), ds.dtype
            ref_key = next((k for k in reference_keys if k in h5), None)
            header = H5KSpaceHeader(
                shape=shape,
                ref_key=ref_key,
                ref_shape=tuple(h5[ref_key].shape) if ref_key else None,
                attrs={k: _attr(v) for k, v in h5.attrs.items()},
                xml=h5["ismrmrd_header"][()] if "ismrmrd_header" in h5 else None,
                mask=np.asarray(h5["mask"][()], dtype=bool) if with_mask and "mask" in h5 else None,
            )
    except KSpaceReadError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise KSpaceReadError(f"unreadable HDF5 file ({exc})", path) from exc
    if dtype.kind != "c":
        raise KSpaceReadError(f"'kspace' dataset is not complex (dtype {dtype})", path)
    return header


def open_fastmri(path: Path) -> KSpaceVolume:
    """Open a fastMRI-layout HDF5 file lazily (one slice read per request)."""
    header = read_h5_header(
        path, REFERENCE_KEYS, "HDF5 file has no 'kspace' dataset (not fastMRI layout)"
    )
    shape, ref_key, ref_shape = header.shape, header.ref_key, header.ref_shape
    attrs, xml = header.attrs, header.xml
    if len(shape) == 5 or str(attrs.get("dynamic", "")).lower() in ("true", "1"):
        raise KSpaceReadError(
            f"'kspace' of rank {len(shape)} {tuple(shape)} is a cine (2-D + time) layout "
            "(slices, frames, coils, H, W): the 2-D readers do not open it; mriviewer info, "
            "eval, recon and convert read it as cine (mriviewer.core.io.cine.open_cine)",
            path,
        )
    if len(shape) == 3:
        single_coil = True
        num_slices, num_coils, h, w = shape[0], 1, shape[1], shape[2]
    elif len(shape) == 4:
        single_coil = False
        num_slices, num_coils, h, w = shape
    else:
        raise KSpaceReadError(
            f"'kspace' has rank {len(shape)} (shape {shape}); expected (slices, coils, H, W) "
            "or (slices, H, W)",
            path,
        )
    if 0 in shape:
        raise KSpaceReadError(f"'kspace' is empty (shape {shape})", path)
    check_layout(
        path,
        int(num_coils),
        (int(h), int(w)),
        f"'kspace' of shape ({', '.join(str(int(n)) for n in shape)}) read as "
        + ("(S, H, W)" if single_coil else "(S, C, H, W)"),
        "fastMRI 'kspace' must be (slices, coils, H, W) or (slices, H, W)",
    )
    header: dict[str, Any] = {"attrs": attrs, "single_coil": single_coil}
    if xml is not None:
        try:
            header.update(parse_ismrmrd_header(xml if isinstance(xml, bytes | str) else bytes(xml)))
        except ET.ParseError as exc:
            raise KSpaceReadError(f"ismrmrd_header is not valid XML ({exc})", path) from exc
    if "acquisition" in attrs:
        header["acquisition"] = attrs["acquisition"]
    if "simulation" in attrs:
        try:
            header["simulation"] = json.loads(attrs["simulation"])
        except (TypeError, ValueError):
            header["simulation"] = attrs["simulation"]
    if ref_shape is not None:
        if len(ref_shape) != 3 or ref_shape[0] != num_slices:
            raise KSpaceReadError(
                f"'{ref_key}' has shape {ref_shape}; expected ({num_slices}, h, w)", path
            )
        header.setdefault("recon_matrix", [int(ref_shape[1]), int(ref_shape[2])])
        header["reference_key"] = ref_key

    def read(k: int) -> np.ndarray:
        try:
            with h5py.File(path, "r") as h5:
                data = h5["kspace"][k]
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise KSpaceReadError(f"cannot read slice {k} of 'kspace' ({exc})", path) from exc
        return data[None] if single_coil else data

    def read_ref(k: int) -> np.ndarray:
        try:
            with h5py.File(path, "r") as h5:
                return h5[ref_key][k]
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise KSpaceReadError(f"cannot read slice {k} of '{ref_key}' ({exc})", path) from exc

    return KSpaceVolume(
        path=path,
        format="fastmri-h5",
        num_slices=int(num_slices),
        num_coils=int(num_coils),
        matrix=(int(h), int(w)),
        reader=read,
        reference_reader=read_ref if ref_key else None,
        header=header,
    )


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_fastmri(
    path: str | Path,
    kspace: np.ndarray,
    reference: np.ndarray | None = None,
    recon_matrix: tuple[int, int] | None = None,
    attrs: dict[str, Any] | None = None,
    header_xml: str | None = None,
    with_reference: bool = True,
) -> Path:
    """Write a fastMRI-layout HDF5 file atomically.

    kspace: ``(S, C, H, W)`` complex (multi-coil). reference: ``(S, h, w)`` magnitude; if None it
    is the RSS of the inverse FFT, centre-cropped to ``recon_matrix`` (default ``(H, W)``).
    attrs: HDF5 file attributes (dicts and lists are stored as JSON strings).
    with_reference=False writes no reference (e.g. undersampled data, where the RSS of the
    zero-filled k-space would be no ground truth). Returns the path.
    """
    from mriviewer.core.physics.fft import ifft2c_np, rss

    path = Path(path)
    kspace = np.asarray(kspace)
    if kspace.ndim == 3:
        kspace = kspace[None]
    if kspace.ndim != 4 or not np.iscomplexobj(kspace) or kspace.size == 0:
        raise KSpaceWriteError(
            f"k-space to write must be non-empty complex (slices, coils, H, W), got {kspace.shape} "
            f"{kspace.dtype}",
            path,
        )
    s, _, h, w = kspace.shape
    recon_matrix = tuple(recon_matrix) if recon_matrix else (h, w)
    if not with_reference:
        reference = None
    elif reference is None:
        reference = np.stack(
            [center_crop(rss(ifft2c_np(kspace[i])), recon_matrix) for i in range(s)]
        )
    attrs = dict(attrs or {})
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float32)
        if reference.ndim == 2:
            reference = reference[None]
        attrs.setdefault("max", float(reference.max()))
        attrs.setdefault("norm", float(np.linalg.norm(reference)))
    attrs.setdefault("acquisition", "unknown")
    xml = header_xml or make_ismrmrd_header((h, w), recon_matrix)
    try:
        with atomic_write_path(path) as tmp:
            with h5py.File(tmp, "w") as h5:
                h5.create_dataset(
                    "kspace", data=kspace.astype(np.complex64), chunks=(1,) + kspace.shape[1:]
                )
                if reference is not None:
                    h5.create_dataset("reconstruction_rss", data=reference)
                h5.create_dataset("ismrmrd_header", data=xml)
                for key, value in attrs.items():
                    h5.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
    except OSError as exc:
        raise KSpaceWriteError(f"cannot write HDF5 file ({exc})", path) from exc
    return path
