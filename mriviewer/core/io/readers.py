"""Registers the non-fastMRI readers (ISMRMRD, MATLAB, NumPy, BART, TWIX) in detection order.

Sniffers look at content: HDF5 signature plus datasets (fastMRI has ``kspace``; ISMRMRD has a
``/dataset`` group with an acquisition table), the MATLAB text header, the NumPy magic, zip
members ending in ``.npy``, the BART ``# Dimensions`` header and the TWIX file table. A last
catch-all turns any other HDF5 file into a clear "which datasets it holds" error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from mriviewer.core.errors import KSpaceReadError
from mriviewer.core.io.bart import open_bart, sniff_bart
from mriviewer.core.io.base import KSpaceVolume
from mriviewer.core.io.ismrmrd import open_ismrmrd, sniff_ismrmrd
from mriviewer.core.io.matlab import (
    open_mat5,
    open_mat73,
    sniff_mat4,
    sniff_mat5,
    sniff_mat73,
)
from mriviewer.core.io.numpy_io import open_npy, open_npz, sniff_npy, sniff_npz
from mriviewer.core.io.registry import hdf5_offset, register_reader
from mriviewer.core.io.twix import open_twix, sniff_twix


def _sniff_other_hdf5(path: Path, head: bytes) -> bool:
    return hdf5_offset(head) is not None


def _open_other_hdf5(path: Path, **options: Any) -> KSpaceVolume:
    """Never returns: explains why an HDF5 file is not a k-space file we know."""
    try:
        with h5py.File(path, "r") as h5:
            keys = sorted(h5.keys())
    except (OSError, ValueError, RuntimeError) as exc:
        raise KSpaceReadError(f"truncated or corrupt HDF5 file ({exc})", path) from exc
    held = ", ".join(keys[:12]) + (" ..." if len(keys) > 12 else "") if keys else "nothing"
    raise KSpaceReadError(
        "HDF5 file is neither fastMRI (no 'kspace' dataset) nor ISMRMRD (no /dataset "
        f"acquisition table) nor MATLAB v7.3; it holds: {held}",
        path,
    )


register_reader("ismrmrd-h5", sniff_ismrmrd, open_ismrmrd)
register_reader("matlab-v7.3", sniff_mat73, open_mat73)
register_reader("matlab", sniff_mat5, open_mat5)
register_reader("npy", sniff_npy, open_npy)
register_reader("npz", sniff_npz, open_npz)
register_reader("bart", sniff_bart, open_bart)
register_reader("twix", sniff_twix, open_twix)
register_reader("matlab-v4", sniff_mat4, open_mat5)
register_reader("hdf5", _sniff_other_hdf5, _open_other_hdf5)
