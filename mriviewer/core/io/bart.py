"""BART ``.cfl`` / ``.hdr`` k-space reader (either file may be given).

The ``.hdr`` lists up to 16 dimensions; the ``.cfl`` holds complex64 little-endian samples in
column-major (Fortran) order. BART dims are ``[RO, PE1, PE2, COIL, MAPS, TE, ...]``: each slice
is ``(COIL, RO, PE1)`` = ``(C, H, W)`` (phase-encode lines along W). PE2 partitions become slices
after a centred inverse FFT along PE2 (``partitions="fft"``, default) or as they are
(``partitions="slices"``, for stacks of 2-D k-space); every further non-singleton dim adds slices.
A READ dimension of 1 with PE1 and PE2 both above 1 (the layout of the ESPIRiT example data,
``[1, H, W, C]``) is one 2-D k-space in PHS1 x PHS2: slices are ``(COIL, PE1, PE2)``.
The reading is checked with :func:`~mriviewer.core.io.base.check_layout`.
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


def open_bart(path: Path, partitions: str = "fft", **options: Any) -> KSpaceVolume:
    """Open a BART pair given either file; reads lazily through a memory map."""
    if options:
        raise KSpaceReadError(
            f"BART reader does not take option(s) {', '.join(sorted(options))} "
            "(it takes partitions='fft'|'slices')",
            path,
        )
    if partitions not in ("fft", "slices"):
        raise KSpaceReadError(f"partitions must be 'fft' or 'slices', got {partitions!r}", path)
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
    data = np.memmap(cfl, dtype="<c8", mode="r", shape=tuple(dims), order="F")
    ro, pe1, pe2, coils = dims[:4]
    extra = int(np.prod(dims[4:]))
    view = data.reshape((ro, pe1, pe2, coils, extra), order="F")
    cache: dict[int, np.ndarray] = {}
    shown = " ".join(str(d) for d in dims[: _last(dims)])
    hint = (
        "BART k-space must hold the image in READ x PHS1 (or PHS1 x PHS2 with READ = 1) and "
        "the coils in dim 3"
    )
    named = {BART_DIM_NAMES[i]: d for i, d in enumerate(dims) if d > 1}
    if ro == 1 and pe1 > 1 and pe2 > 1:
        # ESPIRiT-example layout [1, H, W, C]: the 2-D k-space lies in PHS1 x PHS2.
        check_layout(
            path, coils, (pe1, pe2), f"BART dims [{shown}] read as (COIL, PHS1, PHS2)", hint
        )

        def read_plane(k: int) -> np.ndarray:
            return np.ascontiguousarray(np.asarray(view[0, :, :, :, k]).transpose(2, 0, 1))

        return KSpaceVolume(
            path=path,
            format="bart",
            num_slices=extra,
            num_coils=coils,
            matrix=(pe1, pe2),
            reader=read_plane,
            header={
                "bart_dims": dims[: _last(dims)],
                "bart_named_dims": named,
                "bart_layout": "READ = 1: 2-D k-space in PHS1 x PHS2",
            },
        )
    check_layout(path, coils, (ro, pe1), f"BART dims [{shown}] read as (COIL, READ, PHS1)", hint)

    def read(k: int) -> np.ndarray:
        e, p = divmod(k, pe2)
        if partitions == "fft" and pe2 > 1:
            if e not in cache:
                cache.clear()
                block = np.asarray(view[:, :, :, :, e])
                block = np.fft.ifftshift(block, axes=2)
                block = np.fft.ifft(block, axis=2, norm="ortho")
                cache[e] = np.fft.fftshift(block, axes=2).astype(np.complex64)
            sl = cache[e][:, :, p, :]
        else:
            sl = np.asarray(view[:, :, p, :, e])
        return np.ascontiguousarray(sl.transpose(2, 0, 1))

    return KSpaceVolume(
        path=path,
        format="bart",
        num_slices=pe2 * extra,
        num_coils=coils,
        matrix=(ro, pe1),
        reader=read,
        header={
            "bart_dims": dims[: _last(dims)],
            "bart_named_dims": named,
            "partitions": partitions,
        },
    )


def _last(dims: list[int]) -> int:
    """Length of ``dims`` without trailing ones (at least 2)."""
    n = len(dims)
    while n > 2 and dims[n - 1] == 1:
        n -= 1
    return n
