"""BART ``.cfl`` / ``.hdr`` k-space reader (either file may be given).

The ``.hdr`` lists up to 16 dimensions; the ``.cfl`` holds complex64 little-endian samples in
column-major (Fortran) order. BART dims are ``[RO, PE1, PE2, COIL, MAPS, TE, ...]``: each slice
is ``(COIL, RO, PE1)`` = ``(C, H, W)`` (phase-encode lines along W). PE2 partitions become slices
after a centred inverse FFT along PE2 (``partitions="fft"``, default) or as they are
(``partitions="slices"``, for stacks of 2-D k-space); every further non-singleton dim adds slices.
A READ dimension of 1 with PE1 and PE2 both above 1 (the layout of the ESPIRiT example data,
``[1, H, W, C]``) is one 2-D k-space in PHS1 x PHS2: slices are ``(COIL, PE1, PE2)``.
The reading is checked with :func:`~mriviewer.core.io.base.check_layout`.
A TIME dimension (dim 10) above 1 makes the pair a cine (2-D + time) series: this 2-D reader
refuses it with a pointer to :func:`mriviewer.core.io.cine.open_cine`, which reads the same
planes (:class:`BartPlanes`) frame by frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import KSpaceReadError
from mriviewer.core.io.base import KSpaceVolume, check_layout

HDR_MAGIC = b"# Dimensions"
BART_DIM_NAMES = (
    "READ",
    "PHS1",
    "PHS2",
    "COIL",
    "MAPS",
    "TE",
    "COEFF",
    "COEFF2",
    "ITER",
    "CSHIFT",
    "TIME",
    "TIME2",
    "LEVEL",
    "SLICE",
    "AVG",
    "BATCH",
)


def _pair(path: Path) -> tuple[Path, Path]:
    return path.with_suffix(".hdr"), path.with_suffix(".cfl")


def sniff_bart(path: Path, head: bytes) -> bool:
    if head.lstrip().startswith(HDR_MAGIC):
        return True
    if path.suffix.lower() == ".cfl":
        hdr, _ = _pair(path)
        try:
            with open(hdr, "rb") as fh:
                return fh.read(64).lstrip().startswith(HDR_MAGIC)
        except OSError:
            return False
    return False


def read_bart_dims(hdr: Path) -> list[int]:
    """The dimensions listed in a BART ``.hdr`` (trailing ones kept as written)."""
    try:
        lines = hdr.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError as exc:
        raise KSpaceReadError(f"cannot read BART header ({exc})", hdr) from exc
    for i, line in enumerate(lines):
        if line.strip() == "# Dimensions":
            fields = lines[i + 1].split() if i + 1 < len(lines) else []
            try:
                dims = [int(f) for f in fields]
            except ValueError as exc:
                raise KSpaceReadError(
                    f"BART header dimensions are not integers: {' '.join(fields)[:80]!r}", hdr
                ) from exc
            if not dims:
                raise KSpaceReadError("BART header has no dimensions after '# Dimensions'", hdr)
            if len(dims) > 16:
                raise KSpaceReadError(f"BART header lists {len(dims)} dims (at most 16)", hdr)
            if any(d <= 0 for d in dims):
                raise KSpaceReadError(
                    f"BART dimensions must be positive, got {dims} (empty data)", hdr
                )
            return dims
    raise KSpaceReadError("BART header lacks the '# Dimensions' line", hdr)


TIME_DIM = BART_DIM_NAMES.index("TIME")  # 10: the frames of a cine (2-D + time) series
_HINT = (
    "BART k-space must hold the image in READ x PHS1 (or PHS1 x PHS2 with READ = 1) and "
    "the coils in dim 3"
)


def load_bart(path: Path) -> tuple[list[int], np.memmap]:
    """The 16 dims of a BART pair (either file given) and its data as a read-only memory map
    of those dims (Fortran order); KSpaceReadError for a missing file or a size mismatch."""
    hdr, cfl = _pair(path)
    if not hdr.is_file():
        raise KSpaceReadError(f"missing BART header {hdr.name} beside the data file", path)
    if not cfl.is_file():
        raise KSpaceReadError(f"missing BART data file {cfl.name} beside the header", path)
    dims = read_bart_dims(hdr)
    dims += [1] * (16 - len(dims))
    expected = int(np.prod(dims, dtype=np.int64)) * 8
    actual = cfl.stat().st_size
    if actual != expected:
        what = "truncated" if actual < expected else "larger than its header says"
        raise KSpaceReadError(
            f"BART data file is {what}: {actual} bytes, header dims {dims[: _last(dims)]} need "
            f"{expected}",
            cfl,
        )
    return dims, np.memmap(cfl, dtype="<c8", mode="r", shape=tuple(dims), order="F")


def bart_time_frames(path: Path) -> int:
    """BART TIME (dim 10) of the pair at ``path`` (1 when the header does not list it)."""
    dims = read_bart_dims(_pair(path)[0])
    return dims[TIME_DIM] if len(dims) > TIME_DIM else 1


class BartPlanes:
    """How the ``(READ, PHS1, PHS2, COIL)`` blocks of a BART array read as 2-D k-space planes
    (shared by the 2-D reader and the cine reader, :mod:`mriviewer.core.io.cine`).

    ``READ x PHS1`` (phase-encode lines along W), one plane per PHS2 partition (after a centred
    inverse FFT along PHS2 with ``partitions="fft"``, as they are with ``"slices"``), or with
    READ = 1 and PHS1, PHS2 > 1 one ``PHS1 x PHS2`` plane. The reading is checked with
    :func:`check_layout` (``what`` names the reading in its message)."""

    def __init__(self, path: Path, dims: list[int], partitions: str = "fft", what: str = ""):
        ro, pe1, pe2, coils = dims[:4]
        shown = " ".join(str(d) for d in dims[: _last(dims)])
        self.phs_plane = ro == 1 and pe1 > 1 and pe2 > 1
        self.fft = partitions == "fft" and pe2 > 1 and not self.phs_plane
        self.coils = coils
        if self.phs_plane:
            self.matrix, self.per_block = (pe1, pe2), 1
            axes = "(COIL, PHS1, PHS2)"
        else:
            self.matrix, self.per_block = (ro, pe1), pe2
            axes = "(COIL, READ, PHS1)"
        check_layout(path, coils, self.matrix, f"BART dims [{shown}] read as {what}{axes}", _HINT)

    def transform(self, block: np.ndarray) -> np.ndarray:
        """A whole ``(READ, PHS1, PHS2, COIL)`` block ready for :meth:`plane` (PHS2 partitions
        inverse-FFT'd when ``partitions="fft"``; else returned as it is, unread)."""
        if not self.fft:
            return block
        block = np.fft.ifftshift(np.asarray(block), axes=2)
        block = np.fft.ifft(block, axis=2, norm="ortho")
        return np.fft.fftshift(block, axes=2).astype(np.complex64)

    def plane(self, block: np.ndarray, p: int) -> np.ndarray:
        """``(C, H, W)`` plane ``p`` of a (transformed) block."""
        if self.phs_plane:
            return np.ascontiguousarray(np.asarray(block[0]).transpose(2, 0, 1))
        return np.ascontiguousarray(np.asarray(block[:, :, p, :]).transpose(2, 0, 1))


def open_bart(path: Path, partitions: str = "fft", **options: Any) -> KSpaceVolume:
    """Open a BART pair given either file; reads lazily through a memory map. A TIME dimension
    (dim 10) above 1 is a cine series: refused with a pointer to the cine reader."""
    if options:
        raise KSpaceReadError(
            f"BART reader does not take option(s) {', '.join(sorted(options))} "
            "(it takes partitions='fft'|'slices')",
            path,
        )
    if partitions not in ("fft", "slices"):
        raise KSpaceReadError(f"partitions must be 'fft' or 'slices', got {partitions!r}", path)
    dims, data = load_bart(path)
    if dims[TIME_DIM] > 1:
        raise KSpaceReadError(
            f"BART dims [{' '.join(str(d) for d in dims[: _last(dims)])}] have TIME (dim 10) = "
            f"{dims[TIME_DIM]}: a cine (2-D + time) series; the 2-D readers do not open it; "
            "mriviewer info, eval, recon and convert read it as cine "
            "(mriviewer.core.io.cine.open_cine)",
            path,
        )
    planes = BartPlanes(path, dims, partitions)
    ro, pe1, pe2, coils = dims[:4]
    extra = int(np.prod(dims[4:]))
    view = data.reshape((ro, pe1, pe2, coils, extra), order="F")
    cache: dict[int, np.ndarray] = {}
    named = {BART_DIM_NAMES[i]: d for i, d in enumerate(dims) if d > 1}

    def read(k: int) -> np.ndarray:
        e, p = divmod(k, planes.per_block)
        if planes.fft:
            if e not in cache:
                cache.clear()
                cache[e] = planes.transform(view[:, :, :, :, e])
            return planes.plane(cache[e], p)
        return planes.plane(view[:, :, :, :, e], p)

    header: dict[str, Any] = {"bart_dims": dims[: _last(dims)], "bart_named_dims": named}
    if planes.phs_plane:
        header["bart_layout"] = "READ = 1: 2-D k-space in PHS1 x PHS2"
    else:
        header["partitions"] = partitions
    return KSpaceVolume(
        path=path,
        format="bart",
        num_slices=planes.per_block * extra,
        num_coils=coils,
        matrix=planes.matrix,
        reader=read,
        header=header,
    )


def shown_dims(dims: list[int]) -> list[int]:
    """``dims`` without trailing ones (at least 2), as messages and headers show them."""
    return dims[: _last(dims)]


def _last(dims: list[int]) -> int:
    """Length of ``dims`` without trailing ones (at least 2)."""
    n = len(dims)
    while n > 2 and dims[n - 1] == 1:
        n -= 1
    return n
