"""MATLAB ``.mat`` k-space reader: v4/v5/v7 through ``scipy.io.loadmat``, v7.3 through h5py.

The variable is ``variable=`` if given, else one named kspace/ksp, else the only complex one.
Axes follow MATLAB's ``size()`` order (v7.3 files store them reversed; they are put back), read
by rank as ``(H, W)``, ``(C, H, W)`` or ``(S, C, H, W)`` unless ``axes=`` says otherwise (e.g.
``axes="HWC"`` for ``[rows, cols, coils]``).
"""

from __future__ import annotations

import math
import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mriviewer.core.errors import KSpaceReadError
from mriviewer.core.io.base import KSpaceVolume
from mriviewer.core.io.numpy_io import DEFAULT_NAMES, array_volume, check_complex, pick_variable

MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
MAT73_MAGIC = b"MATLAB 7.3 MAT-file"
_MATLAB_INTERNAL = ("#refs#", "#subsystem#")


def sniff_mat5(path: Path, head: bytes) -> bool:
    return head.startswith(MAT5_MAGIC)


def sniff_mat73(path: Path, head: bytes) -> bool:
    return head.startswith(MAT73_MAGIC)


def sniff_mat4(path: Path, head: bytes) -> bool:
    """Level-4 MAT files have no magic; accept a ``.mat`` name whose first header is plausible."""
    if path.suffix.lower() != ".mat" or len(head) < 20:
        return False
    mopt, mrows, ncols, imagf, namlen = np.frombuffer(head[:20], dtype="<u4")
    return (
        mopt in (0, 10, 20, 30, 40, 50)
        and imagf in (0, 1)
        and 0 < namlen < 64
        and mrows * ncols > 0
    )


def open_mat5(
    path: Path, variable: str | None = None, axes: str | None = None, **options: Any
) -> KSpaceVolume:
    """Open a v4/v5/v7 MAT file with scipy (the chosen variable is read into memory).

    v5/v7 files are first checked element by element (:func:`scan_mat5`): scipy's compiled
    reader can crash the interpreter on some corrupt files, so it only ever sees a variable
    whose structure is sound.
    """
    _no_options(options, path)
    array, what, header = load_mat5(path, variable)
    return array_volume(path, "matlab", array, axes, what, header)


def load_mat5(path: Path, variable: str | None = None) -> tuple[np.ndarray, str, dict[str, Any]]:
    """The chosen complex array of a v4/v5/v7 MAT file (see :func:`open_mat5`), in MATLAB's
    ``size()`` order, with its description (``"variable 'NAME'"``) and header entries."""
    import scipy.io

    version = 5 if _read_head(path).startswith(MAT5_MAGIC) else 4
    if version == 5:
        variables = scan_mat5(path)
        numeric = {v.name: v.is_complex for v in variables if v.numeric}
        others = {v.name: v.kind for v in variables if not v.numeric}
        names = sorted(numeric) + sorted(others)
        if variable is not None and variable in others:
            raise KSpaceReadError(
                f"variable {variable!r} is a MATLAB {others[variable]}, expected a complex "
                "numeric array",
                path,
            )
        if not numeric and others:
            held = ", ".join(f"{n} ({k})" for n, k in sorted(others.items()))
            raise KSpaceReadError(f"MATLAB file holds no numeric array (variables: {held})", path)
        wanted = pick_variable(
            {**numeric, **{n: False for n in others}}, bool, variable, path, "MATLAB file"
        )
        if wanted in others:
            raise KSpaceReadError(
                f"variable {wanted!r} is a MATLAB {others[wanted]}, expected a complex "
                "numeric array",
                path,
            )
    try:
        if version == 4:
            names = [name for name, _, _ in scipy.io.whosmat(str(path))]
            wanted = _preferred(names, variable)
        data = scipy.io.loadmat(
            str(path), variable_names=[wanted] if wanted else None, mat_dtype=False
        )
    except KSpaceReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on corrupt input
        raise KSpaceReadError(
            f"truncated or corrupt MATLAB file ({type(exc).__name__}: {exc})", path
        ) from exc
    arrays = {k: v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray)}
    if not arrays:
        raise KSpaceReadError(
            f"MATLAB file variables ({', '.join(names) or 'none'}) could not be read as arrays",
            path,
        )
    name = pick_variable(arrays, lambda a: np.iscomplexobj(a), variable, path, "MATLAB file")
    array = arrays[name]
    if array.dtype.kind == "O":
        raise KSpaceReadError(
            f"variable {name!r} is a cell array or struct, expected a complex numeric array",
            path,
        )
    check_complex(array.dtype, path, f"variable {name!r}")
    return array, f"variable {name!r}", {"variable": name, "mat_version": version}


# --- MAT v5 structure check ----------------------------------------------------------------

MI_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8}
MI_MATRIX, MI_COMPRESSED = 14, 15
NUMERIC_CLASSES = set(range(6, 16))
CLASS_NAMES = {1: "cell array", 2: "struct", 3: "object", 4: "char array", 5: "sparse matrix"}


@dataclass
class MatVariable:
    """One top-level MAT v5 variable as found by :func:`scan_mat5`."""

    name: str
    kind: str
    numeric: bool
    is_complex: bool
    dims: tuple[int, ...]


def _read_head(path: Path, size: int = 128) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def scan_mat5(path: Path, max_inflated: int = 1 << 34) -> list[MatVariable]:
    """Walk a v5/v7 MAT file's data elements; raise KSpaceReadError on any structural fault.

    Checks every tag's type and size against its container, and for numeric arrays that the
    real/imaginary parts hold exactly ``prod(dims)`` values of a valid type. The file is
    memory-mapped; only compressed variables are inflated (up to ``max_inflated`` bytes).
    """
    if path.stat().st_size < 128:
        raise KSpaceReadError("truncated MATLAB file (shorter than its 128-byte header)", path)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as raw:
        endian = {b"IM": "<", b"MI": ">"}.get(raw[126:128])
        if endian is None:
            raise KSpaceReadError("corrupt MATLAB header (bad endian indicator)", path)
        out: list[MatVariable] = []
        pos, end = 128, len(raw)
        while pos < end:
            mtype, nbytes, at, pos = _tag(raw, pos, end, endian, path, "top-level element")
            if mtype == MI_COMPRESSED:
                try:
                    inner = zlib.decompressobj().decompress(raw[at : at + nbytes], max_inflated)
                except zlib.error as exc:
                    raise KSpaceReadError(
                        f"corrupt compressed variable in MATLAB file ({exc})", path
                    ) from exc
                itype, inbytes, iat, _ = _tag(
                    inner, 0, len(inner), endian, path, "compressed element"
                )
                if itype == MI_MATRIX:  # scipy skips other element types too
                    out.append(_scan_matrix(inner, iat, iat + inbytes, endian, path))
            elif mtype == MI_MATRIX:
                out.append(_scan_matrix(raw, at, at + nbytes, endian, path))
    return out


def _tag(
    buf: Any, pos: int, end: int, endian: str, path: Path, what: str
) -> tuple[int, int, int, int]:
    """Parse the data-element tag at ``pos`` (inside ``buf[:end]``):
    (type, nbytes, data offset, next element offset)."""
    if pos + 8 > end:
        raise KSpaceReadError(f"truncated MATLAB file ({what} tag cut off)", path)
    first, second = struct.unpack_from(endian + "II", buf, pos)
    if first >> 16:  # small data element: type and size packed in 4 bytes, data in the next 4
        mtype, nbytes = first & 0xFFFF, first >> 16
        if nbytes > 4:
            raise KSpaceReadError(f"corrupt MATLAB file ({what} has a bad small tag)", path)
        return mtype, nbytes, pos + 4, pos + 8
    mtype, nbytes = first, second
    if pos + 8 + nbytes > end:
        raise KSpaceReadError(
            f"truncated MATLAB file ({what} needs {nbytes} bytes, {end - pos - 8} left)", path
        )
    padded = pos + 8 + (nbytes if mtype == MI_COMPRESSED else ((nbytes + 7) // 8) * 8)
    return mtype, nbytes, pos + 8, padded


def _scan_matrix(buf: Any, start: int, end: int, endian: str, path: Path) -> MatVariable:
    """Check one miMATRIX element's sub-elements (``buf[start:end]``)."""
    mtype, nbytes, at, pos = _tag(buf, start, end, endian, path, "array flags")
    if mtype != 6 or nbytes != 8:
        raise KSpaceReadError("corrupt MATLAB file (bad array flags element)", path)
    flags = struct.unpack_from(endian + "I", buf, at)[0]
    cls, is_complex = flags & 0xFF, bool(flags & 0x800)
    mtype, nbytes, at, pos = _tag(buf, pos, end, endian, path, "dimensions")
    if mtype != 5 or nbytes % 4 or nbytes < 8:
        raise KSpaceReadError("corrupt MATLAB file (bad dimensions element)", path)
    dims = struct.unpack_from(f"{endian}{nbytes // 4}i", buf, at)
    if any(d < 0 for d in dims):
        raise KSpaceReadError(f"corrupt MATLAB file (negative dimensions {dims})", path)
    mtype, nbytes, at, pos = _tag(buf, pos, end, endian, path, "array name")
    if mtype not in (1, 2):
        raise KSpaceReadError("corrupt MATLAB file (bad array name element)", path)
    name = bytes(buf[at : at + nbytes]).decode("latin-1")
    if cls not in NUMERIC_CLASSES:
        kind = CLASS_NAMES.get(cls, f"class {cls}")
        return MatVariable(name, kind, False, False, tuple(dims))
    count = math.prod(dims)
    for part in ("real", "imaginary")[: 1 + is_complex]:
        mtype, nbytes, at, pos = _tag(buf, pos, end, endian, path, f"{part} part of {name!r}")
        size = MI_SIZES.get(mtype)
        if size is None or nbytes != count * size:
            raise KSpaceReadError(
                f"corrupt MATLAB file: {part} part of {name!r} holds {nbytes} bytes of type "
                f"{mtype}, dims {list(dims)} need {count} values",
                path,
            )
    return MatVariable(name, "numeric array", True, is_complex, tuple(dims))


def open_mat73(
    path: Path, variable: str | None = None, axes: str | None = None, **options: Any
) -> KSpaceVolume:
    """Open a v7.3 (HDF5) MAT file lazily; complex data is a ``{real, imag}`` compound."""
    _no_options(options, path)
    array, what, header = load_mat73(path, variable)
    return array_volume(path, "matlab", array, axes, what, header)


def load_mat73(
    path: Path, variable: str | None = None
) -> tuple[_ReversedH5Array, str, dict[str, Any]]:
    """The chosen variable of a v7.3 MAT file as a lazy array in MATLAB axis order, with its
    description and header entries (see :func:`open_mat73`)."""
    try:
        with h5py.File(path, "r") as h5:
            info = {
                key: (h5[key].dtype, h5[key].shape, _attr_text(h5[key].attrs.get("MATLAB_class")))
                for key in h5
                if key not in _MATLAB_INTERNAL and isinstance(h5[key], h5py.Dataset)
            }
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise KSpaceReadError(f"truncated or corrupt MATLAB v7.3 file ({exc})", path) from exc
    name = pick_variable(info, lambda i: _is_complex_compound(i[0]), variable, path, "MATLAB file")
    dtype, stored_shape, matlab_class = info[name]
    if matlab_class in ("cell", "struct") or dtype.kind == "O":
        raise KSpaceReadError(
            f"variable {name!r} is a MATLAB {matlab_class or 'object'}, expected a complex array",
            path,
        )
    if not _is_complex_compound(dtype):
        check_complex(dtype, path, f"variable {name!r}")
    array = _ReversedH5Array(path, name, tuple(stored_shape), dtype)
    header = {"variable": name, "mat_version": 7.3, "matlab_class": matlab_class}
    return array, f"variable {name!r}", header


class _ReversedH5Array:
    """A v7.3 dataset seen in MATLAB axis order, read lazily; compound real/imag -> complex64."""

    def __init__(self, path: Path, name: str, stored_shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.name, self.dtype = path, name, dtype
        self.shape = tuple(reversed(stored_shape))

    def __getitem__(self, index: tuple[Any, ...]) -> np.ndarray:
        try:
            with h5py.File(self.path, "r") as h5:
                block = h5[self.name][tuple(reversed(index))]
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise KSpaceReadError(f"cannot read variable {self.name!r} ({exc})", self.path) from exc
        if _is_complex_compound(block.dtype) and block.dtype.kind != "c":
            out = np.empty(block.shape, np.complex64)
            out.real, out.imag = block["real"], block["imag"]
            block = out
        return np.asarray(block).transpose().astype(np.complex64, copy=False)


def _is_complex_compound(dtype: np.dtype) -> bool:
    names = dtype.names or ()
    return dtype.kind == "c" or ("real" in names and "imag" in names)


def _attr_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return str(value)


def _preferred(names: list[str], variable: str | None) -> str | None:
    """The one variable worth loading alone (given or conventionally named), else None (all)."""
    if variable is not None:
        return variable if variable in names else None
    lowered = {n.lower(): n for n in names}
    return next((lowered[n] for n in DEFAULT_NAMES if n in lowered), None)


def _no_options(options: dict[str, Any], path: Path) -> None:
    if options:
        raise KSpaceReadError(
            f"MATLAB reader does not take option(s) {', '.join(sorted(options))} "
            "(it takes variable=, axes=)",
            path,
        )
