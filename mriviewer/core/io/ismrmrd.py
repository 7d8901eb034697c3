"""ISMRMRD / MRD HDF5 reader for Cartesian acquisitions (h5py on ``/dataset/data`` + ``/xml``).

Each acquisition row holds a header (``head``), a trajectory and ``data`` (interleaved float32
real/imag of ``(channels, samples)``). Noise, navigator, phase-correction, feedback, dummy and
phase-stabilisation acquisitions are skipped by their flags; calibration-only (ACS) lines are kept
where they share the imaging readout. Lines are placed by ``kspace_encode_step_1`` (shifted so the
header's encoding-limit centre lands at the matrix centre), averages are averaged, and every
distinct (slice, contrast, phase, repetition, set) is one slice of the volume; 3-D encodes
(``kspace_encode_step_2``) become slices after a centred inverse FFT along the partitions.

Slices are ``(C, H, W)`` = ``(coils, readout kx, phase-encode ky)``: phase-encode lines run along
the last axis as everywhere in mriviewer (and in fastMRI files).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mriviewer.core.errors import KSpaceReadError
from mriviewer.core.io.base import KSpaceVolume, check_layout
from mriviewer.core.io.registry import hdf5_offset

# ISMRMRD acquisition flag bits (1-based, as in ismrmrd/constants.py).
ACQ_IS_NOISE_MEASUREMENT = 19
ACQ_IS_PARALLEL_CALIBRATION = 20
ACQ_IS_REVERSE = 22
SKIPPED_FLAGS = {
    19: "noise",
    23: "navigator",
    24: "phase correction",
    26: "HP feedback",
    27: "dummy scan",
    28: "RT feedback",
    29: "surface-coil correction",
    30: "phase stabilisation reference",
    31: "phase stabilisation",
}
VOLUME_COUNTERS = ("slice", "contrast", "phase", "repetition", "set")


def _find_group(h5: h5py.File) -> str | None:
    """Name of the ISMRMRD dataset group (``dataset`` preferred), or None."""
    names = ["dataset"] + [n for n in h5 if n != "dataset"]
    for name in names:
        group = h5.get(name)
        if not isinstance(group, h5py.Group):
            continue
        data = group.get("data")
        if isinstance(data, h5py.Dataset) and data.dtype.names and "head" in data.dtype.names:
            return name
        if name == "dataset" and "xml" in group:
            return name
    return None


def sniff_ismrmrd(path: Path, head: bytes) -> bool:
    if hdf5_offset(head) != 0:
        return False
    try:
        with h5py.File(path, "r") as h5:
            return "kspace" not in h5 and _find_group(h5) is not None
    except OSError:
        return False


def _child(node: ET.Element | None, *tags: str) -> ET.Element | None:
    for tag in tags:
        if node is None:
            return None
        node = next((c for c in node if c.tag.split("}")[-1] == tag), None)
    return node


def _int(node: ET.Element | None, *tags: str) -> int | None:
    found = _child(node, *tags)
    if found is None or not (found.text or "").strip():
        return None
    return int(float(found.text))


def _float(node: ET.Element | None, *tags: str) -> float | None:
    text = _text(node, *tags)
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def _text(node: ET.Element | None, *tags: str) -> str | None:
    found = _child(node, *tags)
    return None if found is None else (found.text or "").strip() or None


def _matrix(enc: ET.Element, space: str) -> list[int] | None:
    x, y = _int(enc, space, "matrixSize", "x"), _int(enc, space, "matrixSize", "y")
    return [x, y] if x and y else None


def parse_mrd_xml(xml: bytes | str, path: Path, encoding: int = 0) -> dict[str, Any]:
    """Encoding facts from the MRD XML header in mriviewer's (H, W) = (x, y) order.

    The facts are those of ``<encoding>`` number ``encoding`` (0-based, as ``encoding_space_ref``
    counts them); ``xml_encodings`` lists every ``<encoding>`` (index, encoded and recon matrix).
    ``encoded_fov_mm`` / ``recon_fov_mm`` (x, y) and ``slice_thickness_mm`` (z field of view per
    encoded partition) give exports their pixel spacing.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise KSpaceReadError(f"ISMRMRD XML header is not valid XML ({exc})", path) from exc
    encodings = [c for c in root if c.tag.split("}")[-1] == "encoding"]
    enc = encodings[encoding] if 0 <= encoding < len(encodings) else None
    out: dict[str, Any] = {
        "xml_encodings": [
            {
                "index": i,
                "encoded_matrix": _matrix(e, "encodedSpace"),
                "recon_matrix": _matrix(e, "reconSpace"),
            }
            for i, e in enumerate(encodings)
        ]
    }
    if enc is not None:
        trajectory = _text(enc, "trajectory")
        if trajectory:
            out["trajectory"] = trajectory
        for space, key in (("encodedSpace", "encoded_matrix"), ("reconSpace", "recon_matrix")):
            x, y = _int(enc, space, "matrixSize", "x"), _int(enc, space, "matrixSize", "y")
            if x and y:
                out[key] = [x, y]
        z = _int(enc, "encodedSpace", "matrixSize", "z")
        if z:
            out["encoded_z"] = z
        for space, key in (("encodedSpace", "encoded_fov_mm"), ("reconSpace", "recon_fov_mm")):
            fov = [_float(enc, space, "fieldOfView_mm", axis) for axis in "xyz"]
            if fov[0] and fov[1]:
                out[key] = fov[:2]
            if space == "encodedSpace" and fov[2]:  # one slice (2-D) or partition (3-D)
                out["slice_thickness_mm"] = fov[2] / (z or 1)
        for step in ("kspace_encoding_step_1", "kspace_encoding_step_2"):
            centre = _int(enc, "encodingLimits", step, "center")
            if centre is not None:
                out[f"{step}_center"] = centre
        accel = _int(enc, "parallelImaging", "accelerationFactor", "kspace_encoding_step_1")
        if accel:
            out["acceleration"] = accel
    system = _child(root, "acquisitionSystemInformation")
    field = _text(system, "systemFieldStrength_T")
    if field:
        out["field_strength_t"] = float(field)
    vendor = _text(system, "systemVendor")
    if vendor:
        out["system"] = vendor
    protocol = _text(root, "measurementInformation", "protocolName")
    sequence = _text(root, "sequenceParameters", "sequence_type")
    if sequence:
        out["sequence"] = sequence
    if protocol or sequence:
        out["acquisition"] = protocol or sequence
    return out


def _flag(flags: np.ndarray, bit: int) -> np.ndarray:
    return ((flags >> np.uint64(bit - 1)) & np.uint64(1)).astype(bool)


def open_ismrmrd(
    path: Path, group: str | None = None, encoding: int | None = None, **options: Any
) -> KSpaceVolume:
    """Open an ISMRMRD HDF5 file; one volume slice per (slice, contrast, phase, rep, set[, z]).

    ``encoding`` (default 0) picks the encoding space: only acquisitions whose
    ``encoding_space_ref`` equals it are read (others, e.g. a low-resolution reference scan, are
    listed in ``header["encodings"]``). Noise acquisitions give ``noise_covariance``.
    Raises :class:`KSpaceReadError` for a missing encoding or an implausible layout.
    """
    if options:
        raise KSpaceReadError(
            f"ISMRMRD reader does not take option(s) {', '.join(sorted(options))} "
            "(it takes group=, encoding=)",
            path,
        )
    try:
        encoding = 0 if encoding is None else int(encoding)
    except (TypeError, ValueError) as exc:
        raise KSpaceReadError(f"encoding must be an integer, got {encoding!r}", path) from exc
    if encoding < 0:
        raise KSpaceReadError(f"encoding must be 0 or more, got {encoding}", path)
    try:
        with h5py.File(path, "r") as h5:
            name = group or _find_group(h5)
            if name is None or name not in h5:
                raise KSpaceReadError(
                    f"no ISMRMRD dataset group {group or '/dataset'} in the file", path
                )
            grp = h5[name]
            if "data" not in grp:
                raise KSpaceReadError(
                    f"ISMRMRD group /{name} has no 'data' (acquisitions) dataset", path
                )
            ds = grp["data"]
            if not (
                isinstance(ds, h5py.Dataset)
                and ds.dtype.names
                and {"head", "data"} <= set(ds.dtype.names)
            ):
                raise KSpaceReadError(
                    f"/{name}/data is not an ISMRMRD acquisition table (needs head and data)", path
                )
            heads = ds.fields("head")[:]
            xml_ds = grp.get("xml")
            xml = None
            if isinstance(xml_ds, h5py.Dataset) and xml_ds.size:
                xml = xml_ds[()] if xml_ds.shape == () else xml_ds[0]
    except KSpaceReadError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
        raise KSpaceReadError(f"truncated or corrupt ISMRMRD file ({exc})", path) from exc
    header: dict[str, Any] = {"ismrmrd_group": name}
    if xml is not None:
        header.update(
            parse_mrd_xml(xml if isinstance(xml, bytes | str) else bytes(xml), path, encoding)
        )
    traj = str(header.get("trajectory", "cartesian")).lower()
    if traj != "cartesian":
        raise KSpaceReadError(
            f"ISMRMRD trajectory is {traj!r}; only Cartesian acquisitions are supported", path
        )
    if heads.size == 0:
        raise KSpaceReadError("ISMRMRD file holds no acquisitions", path)
    return _assemble(path, name, heads, header, encoding)


def _encodings(
    heads: np.ndarray, other: np.ndarray, header: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every encoding space the XML lists or an acquisition refers to, with its acquisitions."""
    refs = heads["encoding_space_ref"].astype(np.int64)
    xml = {e["index"]: e for e in header.get("xml_encodings", [])}
    count = max([*xml, *refs[~other].tolist(), 0]) + 1 if len(refs) else len(xml)
    out = []
    for i in range(count):
        entry = {"index": i, "acquisitions": int(((refs == i) & ~other).sum())}
        for key in ("encoded_matrix", "recon_matrix"):
            if xml.get(i, {}).get(key):
                entry[key] = xml[i][key]
        out.append(entry)
    return out


def _encoding_text(encodings: list[dict[str, Any]]) -> str:
    parts = []
    for e in encodings:
        size = " x ".join(str(n) for n in e.get("encoded_matrix") or []) or "size unknown"
        parts.append(f"{e['index']} ({size}, {e['acquisitions']} acquisitions)")
    return ", ".join(parts)


def _noise_covariance(
    path: Path, group: str, heads: np.ndarray, rows: np.ndarray, coils: int
) -> tuple[np.ndarray | None, int, str | None]:
    """``(Psi, samples per coil, why not)`` from the noise acquisitions ``rows``."""
    from mriviewer.core.errors import ReconError
    from mriviewer.core.physics.noise import estimate_noise_covariance

    if rows.size == 0:
        return None, 0, None
    channels = heads["active_channels"][rows].astype(np.int64)
    if (channels != coils).any():
        counts = ", ".join(str(n) for n in sorted(set(channels.tolist())))
        return None, 0, f"noise acquisitions have {counts} coils, the imaging data {coils}"
    try:
        with h5py.File(path, "r") as h5:
            payload = h5[group]["data"].fields("data")[rows]
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise KSpaceReadError(f"cannot read ISMRMRD noise acquisitions ({exc})", path) from exc
    lines = []
    for row, flat in zip(rows, payload, strict=True):
        n = int(heads["number_of_samples"][row])
        if flat.size != 2 * coils * n:
            raise KSpaceReadError(
                f"noise acquisition {row} holds {flat.size} floats, header says "
                f"{coils} coils x {n} samples (truncated or corrupt)",
                path,
            )
        lines.append(np.asarray(flat, np.float32).view(np.complex64).reshape(coils, n))
    samples = np.concatenate(lines, axis=1)
    try:
        return estimate_noise_covariance(samples), samples.shape[1], None
    except ReconError as exc:
        return None, samples.shape[1], exc.problem


def _assemble(
    path: Path, group: str, heads: np.ndarray, header: dict[str, Any], encoding: int = 0
) -> KSpaceVolume:
    flags = heads["flags"].astype(np.uint64)
    noise_rows = np.flatnonzero(_flag(flags, ACQ_IS_NOISE_MEASUREMENT))
    skip = np.zeros(flags.shape, bool)
    skipped: dict[str, int] = {}
    for bit, label in SKIPPED_FLAGS.items():
        hit = _flag(flags, bit)
        if hit.any() and bit != ACQ_IS_NOISE_MEASUREMENT:
            skipped[label] = int((hit & ~skip).sum())
        skip |= hit
    encodings = _encodings(heads, skip, header)
    header.pop("xml_encodings", None)
    header["encoding"] = encoding
    header["encodings"] = encodings
    if (~skip).any() and (encoding >= len(encodings) or not encodings[encoding]["acquisitions"]):
        raise KSpaceReadError(
            f"encoding {encoding} holds no acquisitions; the file's encodings: "
            f"{_encoding_text(encodings)} (choose one with --encoding N)",
            path,
        )
    other = heads["encoding_space_ref"].astype(np.int64) != encoding
    if (other & ~skip).any():
        skipped["other encodings"] = int((other & ~skip).sum())
    skip |= other
    samples = heads["number_of_samples"].astype(np.int64)
    pre = heads["discard_pre"].astype(np.int64)
    post = heads["discard_post"].astype(np.int64)
    useful = samples - pre - post
    imaging = ~skip & ~_flag(flags, ACQ_IS_PARALLEL_CALIBRATION)
    if not imaging.any():
        imaging = ~skip  # calibration-only file: keep what there is
    if not imaging.any():
        found = ({"noise": int(noise_rows.size)} if noise_rows.size else {}) | skipped
        detail = ", ".join(f"{n} {k}" for k, n in found.items())
        raise KSpaceReadError(f"no imaging acquisitions in the file (only {detail})", path)
    readout = int(np.bincount(useful[imaging]).argmax())
    calib = ~skip & ~imaging & (useful == readout)
    keep = imaging | calib
    header["skipped_acquisitions"] = skipped
    header["calibration_lines"] = int(calib.sum())
    if (useful[keep] != readout).any():
        lengths = ", ".join(str(n) for n in sorted(set(useful[keep].tolist())))
        raise KSpaceReadError(
            f"imaging acquisitions of encoding {encoding} have varying readout lengths "
            f"({lengths} samples)",
            path,
        )
    if readout <= 0:
        raise KSpaceReadError("imaging acquisitions have no samples", path)
    channels = heads["active_channels"].astype(np.int64)
    coils = int(channels[keep][0])
    if (channels[keep] != coils).any() or coils <= 0:
        counts = ", ".join(str(n) for n in sorted(set(channels[keep].tolist())))
        raise KSpaceReadError(
            f"imaging acquisitions have varying or zero coil counts ({counts})", path
        )
    idx = heads["idx"]
    ky = idx["kspace_encode_step_1"].astype(np.int64)
    kz = idx["kspace_encode_step_2"].astype(np.int64)
    enc_x, enc_y = header.get("encoded_matrix", [readout, 0])
    ky_kept, kz_kept = ky[keep], kz[keep]
    ny = max(int(enc_y), int(ky_kept.max()) + 1)
    ky_shift = 0
    if "kspace_encoding_step_1_center" in header:
        ky_shift = ny // 2 - int(header["kspace_encoding_step_1_center"])
        ky_shift = int(np.clip(ky_shift, -ky_kept.min(), ny - 1 - ky_kept.max()))
    nz = max(int(header.get("encoded_z", 1)), int(kz_kept.max()) + 1)
    if len(np.unique(kz_kept)) <= 1:
        nz = 1
    nx = max(int(enc_x), readout)
    centre = heads["center_sample"].astype(np.int64) - pre
    keys = np.stack([idx[c].astype(np.int64) for c in VOLUME_COUNTERS], axis=1)
    volume_keys = sorted({tuple(int(v) for v in row) for row in keys[keep]})
    members = {key: [] for key in volume_keys}
    for i in np.flatnonzero(keep):
        members[tuple(int(v) for v in keys[i])].append(int(i))
    reverse = _flag(flags, ACQ_IS_REVERSE)
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def build(key: tuple[int, ...]) -> np.ndarray:
        rows = np.asarray(members[key])
        try:
            with h5py.File(path, "r") as h5:
                payload = h5[group]["data"].fields("data")[rows]
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise KSpaceReadError(f"cannot read ISMRMRD acquisitions ({exc})", path) from exc
        buf = np.zeros((nz, coils, nx, ny), np.complex64)
        count = np.zeros((nz, ny), np.int32)
        for row, flat in zip(rows, payload, strict=True):
            n = int(samples[row])
            if flat.size != 2 * coils * n:
                raise KSpaceReadError(
                    f"acquisition {row} holds {flat.size} floats, header says "
                    f"{coils} coils x {n} samples (truncated or corrupt)",
                    path,
                )
            line = np.asarray(flat, np.float32).view(np.complex64).reshape(coils, n)
            line = line[:, pre[row] : n - post[row]]
            if reverse[row]:
                line = line[:, ::-1]
            start = (nx - readout) // 2
            if readout < nx and 0 < centre[row] < readout:
                start = int(np.clip(nx // 2 - centre[row], 0, nx - readout))
            z = int(kz[row]) if nz > 1 else 0
            y = int(ky[row]) + ky_shift
            buf[z, :, start : start + readout, y] += line
            count[z, y] += 1
        several = count > 1
        if several.any():
            scale = np.where(several, 1.0 / np.maximum(count, 1), 1.0).astype(np.float32)
            buf *= scale[:, None, None, :]
        if nz > 1:
            buf = np.fft.fftshift(
                np.fft.ifft(np.fft.ifftshift(buf, axes=0), axis=0, norm="ortho"), axes=0
            ).astype(np.complex64)
        return buf

    def read(k: int) -> np.ndarray:
        key = volume_keys[k // nz]
        if key not in cache:
            cache.clear()
            cache[key] = build(key)
        return cache[key][k % nz]

    header["encoded_matrix"] = [nx, ny]
    header.setdefault("recon_matrix", [nx, ny])
    distinct = {c: len({key[i] for key in volume_keys}) for i, c in enumerate(VOLUME_COUNTERS)}
    header["volume_counters"] = {c: n for c, n in distinct.items() if n > 1}
    header["partitions"] = nz
    header["acquisitions"] = int(keep.sum())
    psi, noise_samples, noise_problem = _noise_covariance(path, group, heads, noise_rows, coils)
    if noise_rows.size:
        header["noise_acquisitions"] = int(noise_rows.size)
        header["noise_samples"] = int(noise_samples)
    if noise_problem:
        header["noise_ignored"] = noise_problem
    multi = len(encodings) > 1
    check_layout(
        path,
        coils,
        (nx, ny),
        f"(coils, readout, lines) = ({coils}, {nx}, {ny})"
        + (f" of encoding {encoding}" if multi else ""),
        "choose another encoding with --encoding N"
        if multi
        else "the acquisitions do not form a 2-D Cartesian image",
    )
    return KSpaceVolume(
        path=path,
        format="ismrmrd-h5",
        num_slices=len(volume_keys) * nz,
        num_coils=coils,
        matrix=(nx, ny),
        reader=read,
        header=header,
        noise_covariance=psi,
    )
