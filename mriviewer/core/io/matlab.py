"""MATLAB ``.mat`` k-space reader: v4/v5/v7 through ``scipy.io.loadmat``, v7.3 through h5py.

The variable is ``variable=`` if given, else one named kspace/ksp, else the only complex one.
Axes follow MATLAB's ``size()`` order (v7.3 files store them reversed; they are put back), read
by rank as ``(H, W)``, ``(C, H, W)`` or ``(S, C, H, W)`` unless ``axes=`` says otherwise (e.g.
``axes="HWC"`` for ``[rows, cols, coils]``).
"""

from __future__ import annotations

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
    """Open a v4/v5/v7 MAT file with scipy (the chosen variable is read into memory)."""
    import scipy.io

    _no_options(options, path)
    try:
        listing = scipy.io.whosmat(str(path))
        names = [name for name, _, _ in listing]
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
    if not arrays and names:
        raise KSpaceReadError(
            f"MATLAB file variables ({', '.join(names)}) could not be read as arrays", path
        )
    name = pick_variable(arrays, lambda a: np.iscomplexobj(a), variable, path, "MATLAB file")
    array = arrays[name]
    if array.dtype.kind == "O":
        raise KSpaceReadError(
            f"variable {name!r} is a cell array or struct, expected a complex numeric array",
            path,
        )
    check_complex(array.dtype, path, f"variable {name!r}")
    return array_volume(
        path, "matlab", array, axes, f"variable {name!r}", {"variable": name, "mat_version": 5}
    )


def open_mat73(
    path: Path, variable: str | None = None, axes: str | None = None, **options: Any
) -> KSpaceVolume:
    """Open a v7.3 (HDF5) MAT file lazily; complex data is a ``{real, imag}`` compound."""
    _no_options(options, path)
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
    return array_volume(
        path,
        "matlab",
        array,
        axes,
        f"variable {name!r}",
        {"variable": name, "mat_version": 7.3, "matlab_class": matlab_class},
    )


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
        if _is_complex_compound(block.dtype):
            block = block["real"] + 1j * block["imag"]
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
