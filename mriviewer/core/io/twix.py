"""Siemens TWIX (``.dat``, VB and VD/VE) reader through the optional ``twixtools`` package.

Uses the last measurement's ``image`` data (``map_twix(path)[-1]["image"]``) with readout
oversampling removed, averages and segments averaged, missing lines zero-filled. Each slice is
``(coils, readout H, lines W)``: phase-encode lines run along the last axis (mriviewer's 1-D mask
convention). 3-D partitions (``Par``) become slices after a centred inverse FFT; any further
non-singleton loop (Sli, Eco, Rep, Set, Phs, ...) adds slices.
"""

from __future__ import annotations

import contextlib
import io
import struct
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import KSpaceReadError
from mriviewer.core.io.base import KSpaceVolume, check_layout

CORE_DIMS = ("Lin", "Cha", "Col")


def sniff_twix(path: Path, head: bytes) -> bool:
    """VD/VE: ``0, n_scans`` then a raid-file table; VB: ``header_len, n_buffers, "Config"``."""
    if len(head) < 32:
        return False
    first, second = struct.unpack_from("<II", head, 0)
    if first == 0 and 1 <= second <= 64:
        offset, _length = struct.unpack_from("<QQ", head, 16)
        try:
            size = path.stat().st_size
        except OSError:
            return False
        return offset % 512 == 0 and 8 + 152 * second <= offset < size
    return 0 < first < 10_000_000 and 0 < second < 64 and head[8:15] == b"Config\x00"


@contextlib.contextmanager
def _quiet():
    """twixtools prints progress to stdout/stderr; keep ``info --json`` output clean."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def open_twix(path: Path, remove_os: bool = True, scan: int = -1, **options: Any) -> KSpaceVolume:
    """Open a TWIX file's imaging data lazily (one slice read per request)."""
    if options:
        raise KSpaceReadError(
            f"TWIX reader does not take option(s) {', '.join(sorted(options))} "
            "(it takes remove_os=, scan=)",
            path,
        )
    try:
        import twixtools
    except ImportError as exc:
        raise KSpaceReadError(
            "reading Siemens TWIX files needs the optional 'twixtools' package: "
            "pip install 'mriviewer[twix]'",
            path,
        ) from exc
    try:
        with _quiet():
            scans = twixtools.map_twix(str(path), verbose=False)
    except Exception as exc:  # noqa: BLE001 - twixtools raises many types on corrupt files
        raise KSpaceReadError(
            f"truncated or corrupt TWIX file ({type(exc).__name__}: {exc})", path
        ) from exc
    if not isinstance(scans, list) or not scans:
        raise KSpaceReadError("TWIX file holds no measurements", path)
    try:
        measurement = scans[scan]
    except (IndexError, TypeError) as exc:
        raise KSpaceReadError(
            f"scan={scan} out of range: the file holds {len(scans)} measurement(s)", path
        ) from exc
    image = measurement.get("image") if isinstance(measurement, dict) else None
    if image is None:
        raise KSpaceReadError("TWIX measurement holds no imaging data ('image')", path)
    image.flags["remove_os"] = bool(remove_os)
    image.flags["zf_missing_lines"] = True
    dims = list(image.dims)
    shape = [int(n) for n in image.shape]
    if not set(CORE_DIMS) <= set(dims):
        raise KSpaceReadError(f"TWIX image data lacks Lin/Cha/Col dimensions ({dims})", path)
    if 0 in shape:
        raise KSpaceReadError(
            f"TWIX image data is empty (shape {dict(zip(dims, shape, strict=False))})", path
        )
    size = dict(zip(dims, shape, strict=True))
    partitions = size.get("Par", 1)
    loops = [d for d in dims if d not in CORE_DIMS and d != "Par" and size[d] > 1]
    loop_shape = tuple(size[d] for d in loops)
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def read_block(loop_index: tuple[int, ...]) -> np.ndarray:
        """``(Par, Cha, Col, Lin)`` k-space of one loop combination (Par inverse-FFT'd)."""
        at = dict(zip(loops, loop_index, strict=True))
        index = tuple(
            slice(None) if d in CORE_DIMS or (d == "Par" and partitions > 1) else at.get(d, 0)
            for d in dims
        )
        try:
            with _quiet():
                block = np.asarray(image[index])
        except Exception as exc:  # noqa: BLE001
            raise KSpaceReadError(
                f"cannot read TWIX data ({type(exc).__name__}: {exc})", path
            ) from exc
        kept = [d for d in dims if d in CORE_DIMS or (d == "Par" and partitions > 1)]
        if partitions == 1:
            block, kept = block[None], ["Par", *kept]
        block = np.transpose(block, [kept.index(d) for d in ("Par", "Cha", "Col", "Lin")])
        if partitions > 1:
            block = np.fft.fftshift(
                np.fft.ifft(np.fft.ifftshift(block, axes=0), axis=0, norm="ortho"), axes=0
            )
        return block.astype(np.complex64)

    def read(k: int) -> np.ndarray:
        loop_k, p = divmod(k, partitions)
        loop_index = tuple(int(i) for i in np.unravel_index(loop_k, loop_shape)) if loops else ()
        if loop_index not in cache:
            cache.clear()
            cache[loop_index] = read_block(loop_index)
        return cache[loop_index][p]

    check_layout(
        path,
        size["Cha"],
        (size["Col"], size["Lin"]),
        f"TWIX (Cha, Col, Lin) = ({size['Cha']}, {size['Col']}, {size['Lin']})",
        "the measurement does not hold 2-D Cartesian k-space (try another scan=)",
    )
    header = _twix_header(measurement)
    header.update(
        {
            "twix_dims": {d: size[d] for d in dims if size[d] > 1},
            "readout_oversampling_removed": bool(remove_os),
        }
    )
    psi, noise_samples, noise_problem = _twix_noise(scans, size["Cha"])
    if noise_samples:
        header["noise_samples"] = noise_samples
    if noise_problem:
        header["noise_ignored"] = noise_problem
    return KSpaceVolume(
        path=path,
        noise_covariance=psi,
        format="twix",
        num_slices=partitions * int(np.prod(loop_shape, dtype=np.int64)),
        num_coils=size["Cha"],
        matrix=(size["Col"], size["Lin"]),
        reader=read,
        header=header,
    )


def _twix_header(measurement: dict[str, Any]) -> dict[str, Any]:
    """Protocol facts (sequence, field strength, acceleration) from the TWIX header, if present."""
    out: dict[str, Any] = {}
    hdr = measurement.get("hdr") or {}
    yaps = hdr.get("MeasYaps") or {}
    dicom = hdr.get("Dicom") or {}
    protocol = yaps.get("tProtocolName")
    sequence = yaps.get("tSequenceFileName")
    if protocol:
        out["acquisition"] = str(protocol)
    if sequence:
        out["sequence"] = str(sequence).split("\\")[-1]
    field = (yaps.get("sProtConsistencyInfo") or {}).get("flNominalB0")
    if field:
        out["field_strength_t"] = round(float(field), 3)
    model = dicom.get("ManufacturersModelName")
    if model:
        out["system"] = f"Siemens {model}"
    accel = (yaps.get("sPat") or {}).get("lAccelFactPE")
    if accel:
        out["acceleration"] = int(accel)
    return out


def _twix_noise(scans: list[Any], coils: int) -> tuple[np.ndarray | None, int, str | None]:
    """``(Psi, samples per coil, why not)`` from the noise-adjust data (a ``noise`` entry of
    any measurement, e.g. the noise-adjust scan before the imaging scan); ``(None, 0, None)``
    when the file holds none."""
    from mriviewer.core.errors import ReconError
    from mriviewer.core.physics.noise import estimate_noise_covariance

    blocks = [m["noise"] for m in scans if isinstance(m, dict) and m.get("noise") is not None]
    if not blocks:
        return None, 0, None
    samples = []
    for noise in blocks:
        try:
            noise.flags["remove_os"] = False
            dims = list(noise.dims)
            with _quiet():
                arr = np.asarray(noise[:])
        except Exception as exc:  # noqa: BLE001 - twixtools raises many types
            return None, 0, f"cannot read the TWIX noise data ({type(exc).__name__}: {exc})"
        if "Cha" not in dims:
            return None, 0, "TWIX noise data has no Cha dimension"
        arr = np.moveaxis(arr, dims.index("Cha"), 0)
        samples.append(arr.reshape(arr.shape[0], -1))
    if any(block.shape[0] != coils for block in samples):
        counts = ", ".join(str(b.shape[0]) for b in samples)
        return None, 0, f"TWIX noise data has {counts} coils, the imaging data {coils}"
    stacked = np.concatenate(samples, axis=1)
    stacked = stacked[:, np.any(stacked != 0, axis=0)]  # zero-filled gaps are no noise
    try:
        return estimate_noise_covariance(stacked), int(stacked.shape[1]), None
    except ReconError as exc:
        return None, int(stacked.shape[1]), exc.problem
