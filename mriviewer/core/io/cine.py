"""Dynamic (2-D + time, "cine") k-space: the HDF5 layout, a lazy :class:`CineVolume`, a writer.

Layout (fastMRI-style HDF5, one file holds one or more cine slices):

- ``kspace``: ``(slices, frames, coils, H, W)`` complex64, fully sampled or masked (zeros where
  not sampled); phase-encode lines run along ``W`` as in fastMRI.
- ``reconstruction_rss``: ``(slices, frames, h, w)`` float32, RSS per frame of the fully
  sampled k-space centre-cropped to the recon matrix (optional).
- ``mask``: ``(frames, H, W)`` bool, the k-t sampling of undersampled data (optional).
- ``ismrmrd_header``: the ISMRMRD XML header (encoded / recon matrix), as in fastMRI.
- attributes: ``dynamic = True``, ``frames`` (int), ``acquisition``, and for simulated data
  ``simulation`` (JSON: settings and seed).

A file is read as cine when its ``dynamic`` attribute is true or its ``kspace`` has rank 5.
A ``.npy`` array or a MATLAB ``.mat`` variable (chosen as the 2-D reader chooses it, or with
``variable``) is read as cine when ``axes`` holds ``T`` (letters S T C H W; e.g. ``TCHW``,
``STCHW``, ``HWCT`` for MATLAB's ``[rows, cols, coils, frames]``). A BART ``.cfl`` / ``.hdr``
pair is cine when its TIME dimension (dim 10) is above 1: each frame's planes are read as the
2-D BART reader reads them (:class:`~mriviewer.core.io.bart.BartPlanes`: ``(COIL, READ,
PHS1)``, or ``(COIL, PHS1, PHS2)`` with READ = 1; PHS2 partitions after an inverse FFT), and
PHS2 partitions, MAPS ... CSHIFT and TIME2 ... BATCH (SLICE, dim 13) make the cine slices.

The 2-D reader (:func:`mriviewer.core.io.open_kspace`) refuses a cine file with a one-line
pointer here; the 2-D :class:`~mriviewer.core.io.base.KSpaceVolume` is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import KSpaceReadError, KSpaceWriteError
from mriviewer.core.io.base import check_layout, validate_kspace

CINE_AXES = "STCHW"


@dataclass
class CineVolume:
    """A cine series opened by :func:`open_cine`; slices are read lazily.

    ``reader(k)`` returns ``(T, C, H, W)`` complex, ``reference_reader(k)`` ``(T, h, w)``
    magnitude or None. ``mask``: the file's own ``(T, H, W)`` bool sampling or None.
    """

    path: Path
    format: str
    num_slices: int
    num_frames: int
    num_coils: int
    matrix: tuple[int, int]
    reader: Callable[[int], np.ndarray] = field(repr=False)
    reference_reader: Callable[[int], np.ndarray | None] | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def has_reference(self) -> bool:
        return self.reference_reader is not None

    @property
    def recon_matrix(self) -> tuple[int, int]:
        rm = self.header.get("recon_matrix")
        return (int(rm[0]), int(rm[1])) if rm else self.matrix

    def select_index(self, index: int) -> int:
        if not -self.num_slices <= int(index) < self.num_slices:
            raise KSpaceReadError(
                f"slice {index} out of range: the file has {self.num_slices} slice(s)", self.path
            )
        return int(index) % self.num_slices

    def read_kspace(self, index: int = 0) -> np.ndarray:
        """``(T, C, H, W)`` complex64 k-space of cine slice ``index`` (every frame checked)."""
        k = self.select_index(index)
        data = np.asarray(self.reader(k))
        if data.ndim != 4:
            raise KSpaceReadError(
                f"cine slice has shape {data.shape}, expected (T, C, H, W)", self.path
            )
        return np.stack(
            [
                validate_kspace(frame, self.path, what=f"k-space frame {t}", index=k)
                for t, frame in enumerate(data)
            ]
        )

    def read_reference(self, index: int = 0) -> np.ndarray | None:
        """``(T, h, w)`` float32 reference magnitude of cine slice ``index``, or None."""
        if self.reference_reader is None:
            return None
        ref = np.abs(np.asarray(self.reference_reader(self.select_index(index))))
        if ref.ndim != 3 or ref.shape[0] != self.num_frames or not np.all(np.isfinite(ref)):
            raise KSpaceReadError(
                f"cine reference has shape {ref.shape} (or NaN/Inf); expected "
                f"({self.num_frames}, h, w) finite",
                self.path,
            )
        return ref.astype(np.float32)

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "dynamic": True,
            "slices": self.num_slices,
            "frames": self.num_frames,
            "coils": self.num_coils,
            "matrix": list(self.matrix),
            "recon_matrix": list(self.recon_matrix),
            "reference": self.has_reference,
            "mask": self.mask is not None,
            "header": {k: v for k, v in self.header.items() if k != "xml"},
        }


def _truthy(value: Any) -> bool:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _resolve(path: str | Path) -> Path:
    """``demo-cine`` -> the bundled demo; a BART base name without extension -> its ``.cfl``."""
    from mriviewer.core.resources import resolve_input

    path = resolve_input(path)
    if not path.exists() and Path(f"{path}.cfl").exists():
        path = Path(f"{path}.cfl")  # as open_kspace takes BART names
    return path


def _head(path: Path, size: int = 128) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def _is_bart(path: Path, head: bytes) -> bool:
    from mriviewer.core.io.bart import sniff_bart

    return sniff_bart(path, head)


def _is_mat(path: Path, head: bytes) -> bool:
    from mriviewer.core.io.matlab import sniff_mat4, sniff_mat5, sniff_mat73

    return any(sniff(path, head) for sniff in (sniff_mat73, sniff_mat5, sniff_mat4))


def is_cine(path: str | Path, axes: str | None = None) -> bool:
    """True for a cine HDF5 file (``dynamic`` attribute or rank-5 ``kspace``), a BART pair with
    TIME (dim 10) above 1, or a ``.npy`` / ``.mat`` file given ``axes`` with a ``T``.
    ``demo-cine`` resolves to the bundled cine demo."""
    path = _resolve(path)
    if axes is not None and "T" in str(axes).upper():
        return True
    if not path.is_file():
        return False
    head = _head(path)
    if _is_bart(path, head):
        from mriviewer.core.io.bart import bart_time_frames

        try:
            return bart_time_frames(path) > 1
        except KSpaceReadError:
            return False
    if head[:8] != b"\x89HDF\r\n\x1a\n":
        return False
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            if _truthy(h5.attrs.get("dynamic", False)):
                return True
            ds = h5.get("kspace")
            return isinstance(ds, h5py.Dataset) and ds.ndim == 5
    except OSError:
        return False


def open_cine(path: str | Path, axes: str | None = None, variable: str | None = None) -> CineVolume:
    """Open a cine HDF5 file (layout in the module docstring), a BART pair with TIME > 1, or a
    ``.npy`` array / ``.mat`` variable (``variable``, else as the 2-D reader picks it) whose
    ``axes`` hold T. Raises :class:`KSpaceReadError` (one line) for anything else."""
    path = _resolve(path)
    if not path.is_file():
        raise KSpaceReadError("file not found", path)
    head = _head(path)
    if variable is not None and not _is_mat(path, head):
        raise KSpaceReadError(f"--variable {variable!r} applies to .mat cine files only", path)
    if head.startswith(b"\x93NUMPY"):
        return _open_cine_npy(path, axes)
    if _is_mat(path, head):
        return _open_cine_mat(path, axes, variable, head)
    if axes is not None:
        raise KSpaceReadError("--axes applies to .npy/.mat cine arrays only", path)
    if _is_bart(path, head):
        return _open_cine_bart(path)
    return _open_cine_h5(path)


def _open_cine_h5(path: Path) -> CineVolume:
    import h5py

    from mriviewer.core.io.fastmri import parse_ismrmrd_header, read_h5_header

    header = read_h5_header(
        path, ("reconstruction_rss",), "cine HDF5 file has no 'kspace' dataset", with_mask=True
    )
    shape, ref_shape, attrs, xml, mask = (
        header.shape,
        header.ref_shape,
        header.attrs,
        header.xml,
        header.mask,
    )
    if len(shape) == 4:  # one cine slice stored without the slice axis: (T, C, H, W)
        shape = (1, *shape)
        squeeze = True
    elif len(shape) == 5:
        squeeze = False
    else:
        raise KSpaceReadError(
            f"cine 'kspace' has shape {shape}; expected (slices, frames, coils, H, W)", path
        )
    s, t, c, h, w = (int(n) for n in shape)
    if 0 in shape:
        raise KSpaceReadError(f"'kspace' is empty (shape {shape})", path)
    check_layout(
        path,
        c,
        (h, w),
        f"cine 'kspace' of shape {shape} read as (S, T, C, H, W)",
        "a cine 'kspace' must be (slices, frames, coils, H, W)",
    )
    if "frames" in attrs and int(attrs["frames"]) != t:
        raise KSpaceReadError(f"attribute frames={attrs['frames']} but 'kspace' has {t}", path)
    if mask is not None and mask.shape != (t, h, w):
        raise KSpaceReadError(f"'mask' has shape {mask.shape}; expected ({t}, {h}, {w})", path)
    header: dict[str, Any] = {"attrs": attrs}
    if xml is not None:
        header.update(parse_ismrmrd_header(xml if isinstance(xml, bytes | str) else bytes(xml)))
    if "simulation" in attrs:
        try:
            header["simulation"] = json.loads(attrs["simulation"])
        except (TypeError, ValueError):
            header["simulation"] = attrs["simulation"]
    if "acquisition" in attrs:
        header["acquisition"] = attrs["acquisition"]
    if ref_shape is not None:
        if len(ref_shape) != (3 if squeeze else 4) or tuple(ref_shape[: 2 - squeeze]) != (
            (t,) if squeeze else (s, t)
        ):
            raise KSpaceReadError(
                f"'reconstruction_rss' has shape {ref_shape}; expected ({s}, {t}, h, w)", path
            )
        header.setdefault("recon_matrix", [int(ref_shape[-2]), int(ref_shape[-1])])

    def read(k: int) -> np.ndarray:
        with h5py.File(path, "r") as h5:
            return h5["kspace"][()] if squeeze else h5["kspace"][k]

    def read_ref(k: int) -> np.ndarray:
        with h5py.File(path, "r") as h5:
            return h5["reconstruction_rss"][()] if squeeze else h5["reconstruction_rss"][k]

    return CineVolume(
        path=path,
        format="cine-h5",
        num_slices=s,
        num_frames=t,
        num_coils=c,
        matrix=(h, w),
        reader=read,
        reference_reader=read_ref if ref_shape is not None else None,
        mask=mask,
        header=header,
    )


def _open_cine_npy(path: Path, axes: str | None) -> CineVolume:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise KSpaceReadError(f"not a readable .npy array ({exc})", path) from exc
    if not np.iscomplexobj(array):
        raise KSpaceReadError(f"array is not complex (dtype {array.dtype})", path)
    return _cine_array(path, "cine-npy", array, axes, "array", {})


def _open_cine_mat(path: Path, axes: str | None, variable: str | None, head: bytes) -> CineVolume:
    """A MATLAB variable read as the 2-D MATLAB reader reads it, its axes in ``size()`` order."""
    from mriviewer.core.io.matlab import load_mat5, load_mat73, sniff_mat73

    load = load_mat73 if sniff_mat73(path, head) else load_mat5
    array, what, header = load(path, variable)
    return _cine_array(path, "cine-matlab", array, axes, what, header)


def _cine_array(
    path: Path, fmt: str, array: Any, axes: str | None, what: str, header: dict[str, Any]
) -> CineVolume:
    """A cine volume over an indexable complex ``array`` (a .npy memory map, a MATLAB
    variable) whose axes are ``axes`` (letters S T C H W; default by rank TCHW / STCHW)."""
    shape = tuple(int(n) for n in array.shape)
    if axes is None:
        axes = {4: "TCHW", 5: "STCHW"}.get(len(shape))
        if axes is None:
            raise KSpaceReadError(
                f"{what} of rank {len(shape)} is no cine layout: give --axes with T "
                "(e.g. TCHW, STCHW)",
                path,
            )
    axes = str(axes).upper()
    if (
        len(axes) != len(shape)
        or len(set(axes)) != len(axes)
        or not set(axes) <= set(CINE_AXES)
        or not {"T", "H", "W"} <= set(axes)
    ):
        raise KSpaceReadError(
            f"axes={axes!r} does not fit a cine {what} of shape {shape} (rank {len(shape)}): "
            "use distinct letters from S T C H W including T, H and W",
            path,
        )
    if 0 in shape:
        raise KSpaceReadError(f"{what} is empty (shape {shape})", path)
    dims = dict(zip(axes, shape, strict=True))
    check_layout(
        path,
        dims.get("C", 1),
        (dims["H"], dims["W"]),
        f"{what} of shape {shape} read as ({', '.join(axes)})",
        "give the layout with --axes (letters S T C H W, e.g. TCHW)",
    )
    order = [a for a in "TCHW" if a in axes]

    def read(k: int) -> np.ndarray:
        index = tuple(k if a == "S" else slice(None) for a in axes)
        kept = [a for a in axes if a != "S"]
        block = np.transpose(np.asarray(array[index]), [kept.index(a) for a in order])
        return block if "C" in axes else block[:, None]

    return CineVolume(
        path=path,
        format=fmt,
        num_slices=dims.get("S", 1),
        num_frames=dims["T"],
        num_coils=dims.get("C", 1),
        matrix=(dims["H"], dims["W"]),
        reader=read,
        header={**header, "axes": axes, "array_shape": list(shape)},
    )


def _open_cine_bart(path: Path) -> CineVolume:
    """A BART pair whose TIME (dim 10) holds the frames (see the module docstring)."""
    from mriviewer.core.io.bart import (
        BART_DIM_NAMES,
        TIME_DIM,
        BartPlanes,
        load_bart,
        shown_dims,
    )

    dims, data = load_bart(path)
    frames = dims[TIME_DIM]
    shown = " ".join(str(d) for d in shown_dims(dims))
    if frames < 2:
        raise KSpaceReadError(
            f"BART dims [{shown}] have TIME (dim 10) = {frames}: no cine series (open it with "
            "the 2-D reader)",
            path,
        )
    planes = BartPlanes(path, dims, "fft", what="TIME x ")
    ro, pe1, pe2, coils = dims[:4]
    before = int(np.prod(dims[4:TIME_DIM]))  # MAPS ... CSHIFT
    after = int(np.prod(dims[TIME_DIM + 1 :]))  # TIME2 ... BATCH (SLICE)
    view = data.reshape((ro, pe1, pe2, coils, before, frames, after), order="F")

    def read(k: int) -> np.ndarray:
        block, p = divmod(k, planes.per_block)
        b, a = divmod(block, before)  # the 2-D reader's slice order, TIME left out
        return np.stack(
            [planes.plane(planes.transform(view[:, :, :, :, a, t, b]), p) for t in range(frames)]
        )

    return CineVolume(
        path=path,
        format="cine-bart",
        num_slices=planes.per_block * before * after,
        num_frames=frames,
        num_coils=coils,
        matrix=planes.matrix,
        reader=read,
        header={
            "bart_dims": shown_dims(dims),
            "bart_named_dims": {BART_DIM_NAMES[i]: d for i, d in enumerate(dims) if d > 1},
            **(
                {"bart_layout": "READ = 1: 2-D k-space in PHS1 x PHS2"}
                if planes.phs_plane
                else {"partitions": "fft"}
            ),
        },
    )


def write_cine(
    path: str | Path,
    kspace: np.ndarray,
    reference: np.ndarray | None = None,
    recon_matrix: tuple[int, int] | None = None,
    mask: np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write the cine layout atomically. kspace ``(S, T, C, H, W)`` (or ``(T, C, H, W)``)
    complex; reference ``(S, T, h, w)`` (default: RSS per frame, cropped to ``recon_matrix``;
    none when ``mask`` is given, undersampled data having no ground truth)."""
    import h5py

    from mriviewer.core.images import center_crop
    from mriviewer.core.io.atomic import atomic_write_path
    from mriviewer.core.io.fastmri import make_ismrmrd_header
    from mriviewer.core.physics.fft import ifft2c_np, rss

    path = Path(path)
    kspace = np.asarray(kspace)
    if kspace.ndim == 4:
        kspace = kspace[None]
    if kspace.ndim != 5 or not np.iscomplexobj(kspace) or kspace.size == 0:
        raise KSpaceWriteError(
            f"cine k-space must be complex (slices, frames, coils, H, W), got {kspace.shape}", path
        )
    s, t, _, h, w = kspace.shape
    recon_matrix = tuple(recon_matrix) if recon_matrix else (h, w)
    if reference is None and mask is None:
        reference = np.stack(
            [
                np.stack(
                    [center_crop(rss(ifft2c_np(kspace[i, j])), recon_matrix) for j in range(t)]
                )
                for i in range(s)
            ]
        )
    attrs = dict(attrs or {})
    attrs.update({"dynamic": True, "frames": int(t)})
    attrs.setdefault("acquisition", "cine")
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float32).reshape(s, t, *recon_matrix)
        attrs.setdefault("max", float(reference.max()))
    try:
        with atomic_write_path(path) as tmp:
            with h5py.File(tmp, "w") as h5:
                h5.create_dataset(
                    "kspace", data=kspace.astype(np.complex64), chunks=(1, 1, *kspace.shape[2:])
                )
                if reference is not None:
                    h5.create_dataset("reconstruction_rss", data=reference)
                if mask is not None:
                    h5.create_dataset("mask", data=np.asarray(mask, dtype=bool))
                h5.create_dataset("ismrmrd_header", data=make_ismrmrd_header((h, w), recon_matrix))
                for key, value in attrs.items():
                    h5.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
    except OSError as exc:
        raise KSpaceWriteError(f"cannot write HDF5 file ({exc})", path) from exc
    return path
