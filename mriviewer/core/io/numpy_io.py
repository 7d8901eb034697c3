"""NumPy ``.npy`` / ``.npz`` k-space reader and the array-layout helper MATLAB/NumPy share.

Arrays are read with ``allow_pickle=False`` (object arrays are refused). By default the array's
rank gives its layout: ``(H, W)`` single coil, ``(C, H, W)`` or ``(S, C, H, W)``; the ``axes``
option names the axes explicitly (letters S, C, H, W; e.g. ``axes="HWC"`` for MATLAB-style
``[rows, cols, coils]``). Phase-encode lines run along the last image axis ``W``.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mriviewer.core.errors import KSpaceReadError
from mriviewer.core.io.base import KSpaceVolume, check_layout

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
DEFAULT_NAMES = ("kspace", "ksp", "k_space", "kdata")
DEFAULT_AXES = {2: "HW", 3: "CHW", 4: "SCHW"}


class ArrayLike(Protocol):
    """What :func:`array_volume` needs: a shape and numpy-style indexing."""

    shape: tuple[int, ...]

    def __getitem__(self, index: Any) -> np.ndarray: ...


def parse_axes(axes: str | None, ndim: int, path: Path, what: str) -> str:
    """Check an axes string (letters S, C, H, W; H and W required) against the array rank."""
    if axes is None:
        if ndim not in DEFAULT_AXES:
            raise KSpaceReadError(
                f"{what} has rank {ndim}; expected (H, W), (coils, H, W) or "
                "(slices, coils, H, W) (or give axes=, e.g. 'HWC')",
                path,
            )
        return DEFAULT_AXES[ndim]
    axes = str(axes).upper()
    if (
        len(axes) != ndim
        or len(set(axes)) != len(axes)
        or not set(axes) <= set("SCHW")
        or not {"H", "W"} <= set(axes)
    ):
        raise KSpaceReadError(
            f"axes={axes!r} does not fit {what} of rank {ndim}: use {ndim} distinct letters "
            "from S (slices), C (coils), H, W, including H and W",
            path,
        )
    return axes


def array_volume(
    path: Path,
    fmt: str,
    array: ArrayLike,
    axes: str | None = None,
    what: str = "array",
    header: dict[str, Any] | None = None,
) -> KSpaceVolume:
    """Wrap an indexable complex array of layout ``axes`` as a lazy :class:`KSpaceVolume`."""
    shape = tuple(int(n) for n in array.shape)
    axes = parse_axes(axes, len(shape), path, what)
    if 0 in shape:
        raise KSpaceReadError(f"{what} is empty (shape {shape})", path)
    dims = dict(zip(axes, shape, strict=True))
    num_slices = dims.get("S", 1)
    num_coils = dims.get("C", 1)
    hint = "give the layout with --axes (letters S C H W, e.g. HWC)"
    if fmt != "npy":
        hint += " or choose another array with --variable"
    check_layout(
        path,
        num_coils,
        (dims["H"], dims["W"]),
        f"{what} of shape ({', '.join(str(n) for n in shape)}) read as ({', '.join(axes)})",
        hint,
    )
    order = [c for c in "CHW" if c in axes]

    def read(k: int) -> np.ndarray:
        index = tuple(k if c == "S" else slice(None) for c in axes)
        block = np.asarray(array[index])
        kept = [c for c in axes if c != "S"]
        block = np.transpose(block, [kept.index(c) for c in order])
        return block if "C" in axes else block[None]

    head = dict(header or {})
    head.setdefault("axes", axes)
    head.setdefault("array_shape", list(shape))
    return KSpaceVolume(
        path=path,
        format=fmt,
        num_slices=num_slices,
        num_coils=num_coils,
        matrix=(dims["H"], dims["W"]),
        reader=read,
        header=head,
    )


def check_complex(dtype: np.dtype, path: Path, what: str) -> None:
    """Raise unless ``dtype`` is complex (k-space must keep its phase)."""
    if np.dtype(dtype).kind != "c":
        raise KSpaceReadError(
            f"{what} is not complex (dtype {dtype}); k-space must be a complex array", path
        )


def pick_variable(
    candidates: dict[str, Any],
    is_complex: Callable[[Any], bool],
    variable: str | None,
    path: Path,
    kind: str,
) -> str:
    """Choose the k-space variable: ``variable`` if given, else a kspace/ksp name, else the only
    complex one. ``candidates`` maps names to anything ``is_complex`` understands."""
    names = sorted(candidates)
    if not names:
        raise KSpaceReadError(f"{kind} holds no arrays", path)
    if variable is not None:
        if variable not in candidates:
            raise KSpaceReadError(
                f"no variable {variable!r} in {kind}; it holds: {', '.join(names)}", path
            )
        return variable
    lowered = {n.lower(): n for n in names}
    for name in DEFAULT_NAMES:
        if name in lowered:
            return lowered[name]
    complex_names = [n for n in names if is_complex(candidates[n])]
    if len(complex_names) == 1:
        return complex_names[0]
    if not complex_names:
        raise KSpaceReadError(
            f"{kind} holds no complex array (variables: {', '.join(names)}); k-space must be "
            "complex",
            path,
        )
    raise KSpaceReadError(
        f"{kind} holds several complex arrays ({', '.join(complex_names)}); choose one with "
        "variable=NAME (--variable NAME)",
        path,
    )


def sniff_npy(path: Path, head: bytes) -> bool:
    return head.startswith(NPY_MAGIC)


def sniff_npz(path: Path, head: bytes) -> bool:
    if not head.startswith(ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        # A damaged zip named .npz is still ours, so the user gets an npz-specific error.
        return path.suffix.lower() == ".npz"
    return bool(names) and all(n.endswith(".npy") for n in names)


def open_npy(
    path: Path, variable: str | None = None, axes: str | None = None, **options: Any
) -> KSpaceVolume:
    """Open a ``.npy`` array (memory-mapped, never unpickled)."""
    _no_options(options, path, "npy")
    if variable is not None:
        raise KSpaceReadError(
            f"a .npy file holds a single array; variable={variable!r} applies to .npz/.mat", path
        )
    shape, dtype, offset = _npy_header(path)
    if dtype.hasobject:
        raise KSpaceReadError(
            "array holds Python objects; refusing to unpickle (save plain complex arrays)", path
        )
    check_complex(dtype, path, "array")
    if 0 in shape:
        raise KSpaceReadError(f"array is empty (shape {shape})", path)
    needed = offset + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise KSpaceReadError(
            f"truncated .npy file: {size} bytes, its header ({shape} {dtype}) needs {needed}",
            path,
        )
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise KSpaceReadError(f"not a readable .npy array ({exc})", path) from exc
    check_complex(array.dtype, path, "array")
    return array_volume(path, "npy", array, axes, "array")


def open_npz(
    path: Path, variable: str | None = None, axes: str | None = None, **options: Any
) -> KSpaceVolume:
    """Open one array of a ``.npz`` archive (``variable``, else kspace/ksp, else the only
    complex array); the chosen array is read fully, others are not loaded."""
    _no_options(options, path, "npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            dtypes = {name: _npz_dtype(npz, name) for name in npz.files}
            name = pick_variable(
                dtypes, lambda dt: dt is not None and dt.kind == "c", variable, path, ".npz archive"
            )
            try:
                array = npz[name]
            except ValueError as exc:
                raise KSpaceReadError(
                    f"array {name!r} holds Python objects; refusing to unpickle", path
                ) from exc
    except KSpaceReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/zlib/numpy raise many types
        raise KSpaceReadError(
            f"truncated or corrupt .npz archive ({type(exc).__name__}: {exc})", path
        ) from exc
    check_complex(array.dtype, path, f"array {name!r}")
    return array_volume(path, "npz", array, axes, f"array {name!r}", {"variable": name})


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` from a .npy header; KSpaceReadError if it is corrupt."""
    from numpy.lib import format as npformat

    try:
        with open(path, "rb") as fh:
            version = npformat.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = npformat.read_array_header_1_0(fh)
            else:
                shape, _, dtype = npformat.read_array_header_2_0(fh)
            return tuple(shape), np.dtype(dtype), fh.tell()
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many types
        raise KSpaceReadError(f"corrupt .npy header ({type(exc).__name__}: {exc})", path) from exc


def _npz_dtype(npz: Any, name: str) -> np.dtype | None:
    """dtype of one npz member from its .npy header, without reading the data."""
    from numpy.lib import format as npformat

    try:
        with npz.zip.open(f"{name}.npy") as fh:
            version = npformat.read_magic(fh)
            if version == (1, 0):
                _, _, dtype = npformat.read_array_header_1_0(fh)
            else:
                _, _, dtype = npformat.read_array_header_2_0(fh)
        return dtype
    except Exception:  # noqa: BLE001 - a damaged member is reported when it is read
        return None


def _no_options(options: dict[str, Any], path: Path, fmt: str) -> None:
    if options:
        raise KSpaceReadError(
            f"{fmt} reader does not take option(s) {', '.join(sorted(options))} "
            "(it takes variable=, axes=)",
            path,
        )
