"""k-space I/O: ``open_kspace`` picks a reader by file content; ``write_fastmri`` writes.

Readers register themselves in ``READERS`` (:mod:`mriviewer.core.io.registry`) as ``name ->
(sniff(path, head) -> bool, open(path, **options) -> KSpaceVolume)``; detection tries them in
order on the file's first bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mriviewer.core.errors import KSpaceReadError, MriViewerError
from mriviewer.core.io.base import KSpaceVolume, validate_kspace
from mriviewer.core.io.fastmri import center_crop, parse_ismrmrd_header, write_fastmri
from mriviewer.core.io.registry import (  # noqa: F401 - the registry's public names live here too
    HDF5_SIGNATURE,
    READERS,
    Opener,
    Sniffer,
    hdf5_offset,
    register_reader,
)
from mriviewer.core.resources import resolve_input


def detect_format(path: str | Path) -> str:
    """Name of the reader whose content sniffing accepts ``path``; raises KSpaceReadError."""
    path = _check_path(Path(path))
    head = _read_head(path)
    for name, (sniff, _) in READERS.items():
        try:
            if sniff(path, head):
                return name
        except MriViewerError:
            raise
        except Exception:  # a sniffer must never crash detection
            continue
    raise KSpaceReadError(
        "unrecognised file format (expected fastMRI/ISMRMRD HDF5, BART .cfl/.hdr, .npy/.npz, "
        ".mat or Siemens TWIX .dat)",
        path,
    )


def open_kspace(
    path: str | Path, slice: int | None = None, prewhiten: bool = True, **options: Any
) -> KSpaceVolume:
    """Open any supported k-space file (or ``"demo"``); the format is detected from content.

    Returns a :class:`KSpaceVolume` whose ``kspace`` is the ``(coils, H, W)`` complex64 k-space of
    the current slice (``slice`` or 0). Reader options (e.g. ``variable=`` for MATLAB/npz,
    ``encoding=`` for ISMRMRD) pass through. Files with noise data (MRD noise acquisitions, the
    TWIX noise-adjust scan) are prewhitened unless ``prewhiten=False``. Every failure raises
    :class:`KSpaceReadError` naming the file and the problem.
    """
    path = resolve_input(path)
    if not path.exists() and Path(f"{path}.cfl").exists():
        path = Path(f"{path}.cfl")  # a BART file named without extension, as BART's tools take
    fmt = detect_format(path)
    _, opener = READERS[fmt]
    try:
        volume = opener(path, **options)
    except MriViewerError:
        raise
    except TypeError as exc:
        raise KSpaceReadError(f"bad reader option for {fmt} ({exc})", path) from exc
    except (
        OSError,
        ValueError,
        KeyError,
        IndexError,
        EOFError,
        RuntimeError,
        AttributeError,
    ) as exc:
        raise KSpaceReadError(
            f"cannot read {fmt} file ({type(exc).__name__}: {exc})", path
        ) from exc
    volume.prewhiten = bool(prewhiten)
    if slice is not None:
        volume.select(slice)
    # Validate the current slice up front so a corrupt file fails at open, not later.
    try:
        volume.read_kspace()
    except MriViewerError:
        raise
    except Exception as exc:  # noqa: BLE001 - reader internals must not leak raw tracebacks
        raise KSpaceReadError(f"cannot read k-space ({type(exc).__name__}: {exc})", path) from exc
    return volume


def _check_path(path: Path) -> Path:
    if not path.exists():
        raise KSpaceReadError("file not found", path)
    if path.is_dir():
        raise KSpaceReadError("is a directory, expected a k-space file", path)
    return path


def _read_head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(size)
    except OSError as exc:
        raise KSpaceReadError(f"cannot read file ({exc})", path) from exc
    if not head:
        raise KSpaceReadError("file is empty (0 bytes)", path)
    return head


def _sniff_fastmri(path: Path, head: bytes) -> bool:
    if hdf5_offset(head) != 0:
        return False
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            return "kspace" in h5
    except OSError:
        return False


def _open_fastmri(path: Path, **options: Any) -> KSpaceVolume:
    from mriviewer.core.io.fastmri import open_fastmri

    if options:
        raise KSpaceReadError(f"fastMRI reader takes no options, got {sorted(options)}", path)
    return open_fastmri(path)


register_reader("fastmri-h5", _sniff_fastmri, _open_fastmri)

# Further readers register on import (kept in their own modules).
from mriviewer.core.io import readers as _readers  # noqa: E402,F401

__all__ = [
    "KSpaceVolume",
    "center_crop",
    "detect_format",
    "open_kspace",
    "parse_ismrmrd_header",
    "register_reader",
    "validate_kspace",
    "write_fastmri",
]
