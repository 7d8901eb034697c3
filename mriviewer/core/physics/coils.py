"""Coil sensitivity maps through sigpy (ESPIRiT, JSENSE), cached per (file, slice, settings).

The calibration region is a square (sigpy's EspiritCalib) or, for a narrow 1-D ACS band, a
rectangle: all of the band's lines and 24 points along the readout (:func:`espirit_maps`, as
BART's ``ecalib`` does with the fully sampled region it finds). A square as wide as the band
(e.g. 8 lines at R=8) is too small for ESPIRiT's kernels, and a wider square takes in lines
that were never sampled.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mriviewer.core.errors import ReconError

_MEMORY_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_MEMORY_CACHE_SIZE = 64

#: calibration width (pixels) at which a square region is used; a narrower ACS gets a rectangle
SQUARE_CALIB_MIN = 12
#: extent of a rectangular calibration region along the fully sampled direction
RECT_CALIB_LONG = 24
#: ESPIRiT kernel width (sigpy's default), halved in a narrow calibration direction
ESPIRIT_KERNEL = 6

CalibRegion = int | tuple[int, int]
#: narrowest 2-D calibration square ESPIRiT is run on (see :func:`square_kernel`)
MIN_ESPIRIT_SQUARE = 7


def auto_calibration(acs: tuple[int, int]) -> CalibRegion:
    """Calibration region for a mask whose fully sampled centre is ``acs`` = (rows, cols).

    An ACS at least :data:`SQUARE_CALIB_MIN` wide both ways gives a square as wide as its
    narrow side; a narrow band of 4 or more lines gives a ``(rows, cols)`` rectangle of those
    lines by :data:`RECT_CALIB_LONG`; narrower still, a square of :data:`SQUARE_CALIB_MIN`."""
    rows, cols = (int(v) for v in acs)
    narrow = min(rows, cols)
    if narrow >= SQUARE_CALIB_MIN:
        return narrow
    if narrow < 4:
        return SQUARE_CALIB_MIN
    if cols <= rows:
        return (min(RECT_CALIB_LONG, rows), cols)
    return (rows, min(RECT_CALIB_LONG, cols))


def square_kernel(width: int) -> tuple[int, int]:
    """ESPIRiT kernel for a ``width`` x ``width`` calibration square: ``min(6, (width + 3) //
    3)``, so 6 (sigpy's and BART's default) from 15 points up. Measured on the demo (Poisson R
    6 and 10, CG-SENSE PSNR, zero-filled 22-25 dB): kernel 6 on a 12-point square (49
    calibration rows for 288 unknowns) gave 21 dB, kernel 5 30 dB; on 8 points kernel 4 gave
    19 dB, kernel 3 30 dB; on 7 points kernel 3 30 dB; on 6 points or fewer no kernel beat
    zero-filled (:data:`MIN_ESPIRIT_SQUARE`)."""
    k = min(ESPIRIT_KERNEL, (int(width) + 3) // 3)
    return (k, k)


def _region(calib: CalibRegion, shape: tuple[int, int]) -> tuple[int, int]:
    """``calib`` as (rows, cols), each clipped to [4, the k-space size]."""
    rows, cols = (calib, calib) if isinstance(calib, (int, np.integer)) else calib
    return (int(max(4, min(rows, shape[0]))), int(max(4, min(cols, shape[1]))))


def espirit_maps(
    kspace: np.ndarray,
    calib: tuple[int, int],
    kernel: tuple[int, int] | None = None,
    crop: float = 0.95,
    thresh: float = 0.02,
    max_iter: int = 100,
) -> np.ndarray:
    """ESPIRiT maps (Uecker et al., MRM 2014) from a ``(rows, cols)`` calibration rectangle.

    The same steps as sigpy's EspiritCalib (which takes a square) with sigpy's block, FFT and
    power-method tools: Hankel matrix of the centre, SVD, the kernels' image-space
    covariance, its leading eigenvector per pixel, cropped where the eigenvalue is below
    ``crop``. ``kernel`` defaults to 6 (halved where the region is narrower than 12)."""
    import sigpy as sp

    ksp = np.asarray(kspace, dtype=np.complex64)
    num_coils = ksp.shape[0]
    rows, cols = calib
    if kernel is None:
        kernel = tuple(
            ESPIRIT_KERNEL if n >= 2 * ESPIRIT_KERNEL else max(2, n // 2) for n in (rows, cols)
        )
    kh, kw = kernel
    region = sp.resize(ksp, [num_coils, rows, cols])
    blocks = sp.array_to_blocks(region, [kh, kw], [1, 1])
    mat = blocks.reshape([num_coils, -1, kh * kw]).transpose([1, 0, 2])
    mat = mat.reshape([-1, num_coils * kh * kw])
    _, sing, vh = np.linalg.svd(mat, full_matrices=False)
    kernels = vh[sing > thresh * sing.max()].reshape([-1, num_coils, kh, kw])
    img_shape = ksp.shape[1:]
    # per pixel (transposed layout, as in sigpy): sum over kernels of a^H a
    aha = np.zeros(img_shape[::-1] + (num_coils, num_coils), dtype=np.complex64)
    for kern in kernels:
        img_kernel = sp.ifft(sp.resize(kern, ksp.shape), axes=(-2, -1))
        a_h = np.expand_dims(img_kernel.T, axis=-1)
        aha += a_h @ np.conj(a_h.swapaxes(-1, -2))
    aha *= np.prod(img_shape) / (kh * kw)
    vec = np.ones(ksp.shape[::-1] + (1,), dtype=np.complex64)
    power = sp.alg.PowerMethod(
        lambda x: aha @ x,
        vec,
        norm_func=lambda x: np.sum(np.abs(x) ** 2, axis=-2, keepdims=True) ** 0.5,
        max_iter=max_iter,
    )
    while not power.done():
        power.update()
    maps = vec.T[0]
    maps *= np.conj(maps[0] / np.maximum(np.abs(maps[0]), 1e-30))
    maps *= power.max_eig.T[0] > crop
    return maps.astype(np.complex64)


def cache_dir() -> Path:
    """Disk cache folder for coil maps (``$MRIVIEWER_CACHE`` or ``~/.cache/mriviewer/coilmaps``)."""
    root = os.environ.get("MRIVIEWER_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "mriviewer"
    return base / "coilmaps"


#: bumped whenever an estimator's result changes, so that disk-cache entries written by an
#: earlier version are not read back as today's maps (2: ESPIRiT's slow pixels finished by eigh)
MAPS_VERSION = 2


def _key(
    kspace: np.ndarray, method: str, calib: tuple[int, int], crop: float, source: str | None
) -> str:
    h = hashlib.sha256()
    region = calib[0] if calib[0] == calib[1] else calib  # square keys as before
    h.update(f"{method}|{region}|{crop:.4f}|{source}|{kspace.shape}".encode())
    h.update(f"|v{MAPS_VERSION}".encode())
    # Always hash the calibration data too: the same file and slice may be read differently
    # (prewhitened or not, another encoding), and the source name alone would hit stale maps.
    c, hh, ww = kspace.shape
    cy, cx = hh // 2, ww // 2
    ry, rx = calib
    h.update(
        np.ascontiguousarray(
            kspace[:, cy - ry // 2 : cy + ry // 2 + 1, cx - rx // 2 : cx + rx // 2 + 1]
        ).tobytes()
    )
    return h.hexdigest()[:32]


# Smallest image side coil-map estimation accepts (an axis of size 1 is never an image axis).
MIN_MAP_SIZE = 8


def estimate_coil_maps(
    kspace: np.ndarray,
    method: str = "espirit",
    calib: CalibRegion = 24,
    crop: float = 0.95,
    source: str | None = None,
    disk_cache: bool = False,
    kernel: tuple[int, int] | None = None,
) -> np.ndarray:
    """Estimate ``(C, H, W)`` complex64 coil maps from ``(C, H, W)`` k-space.

    kernel: the ESPIRiT kernel; default 6 x 6 on a square of 12 points or more, else halved
    where the region is narrow (a small 2-D centre wants :func:`square_kernel`).

    method: ``espirit`` (:func:`~mriviewer.core.physics.espirit.espirit_torch`: sigpy
    EspiritCalib's maps on a ``calib`` square, :func:`espirit_maps`' on a
    ``calib = (rows, cols)`` rectangle; eigenvalue crop ``crop``), ``jsense`` (sigpy JsenseRecon,
    kernel width 8 on the ``calib`` centre) or ``lowres`` (:func:`lowres_maps`).
    source: a stable identity such as ``"file.h5#slice3"``; cache entries are keyed by it (else
    by the calibration data). disk_cache: also keep the maps under :func:`cache_dir`.
    A single-coil input returns ones (phase taken from the low-resolution image for 1 coil).
    """
    import sigpy.mri

    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise ReconError(f"coil-map estimation needs (C, H, W) k-space, got {kspace.shape}")
    if min(kspace.shape[-2:]) < MIN_MAP_SIZE:
        h, w = kspace.shape[-2:]
        raise ReconError(
            f"coil-map estimation needs an image of at least {MIN_MAP_SIZE} x {MIN_MAP_SIZE}, "
            f"got {h} x {w} (is an image axis of the file really a coil or slice axis?)"
        )
    if not np.all(np.isfinite(kspace)):
        raise ReconError("k-space contains NaN/Inf; cannot estimate coil maps")
    region = _region(calib, kspace.shape[-2:])
    square = region[0] == region[1]
    key = _key(kspace, method + (f"|k{kernel}" if kernel else ""), region, crop, source)
    if key in _MEMORY_CACHE:
        _MEMORY_CACHE.move_to_end(key)
        return _MEMORY_CACHE[key]
    disk_file = cache_dir() / f"{key}.npy"
    if disk_cache and disk_file.exists():
        try:
            maps = np.load(disk_file, allow_pickle=False)
            if maps.shape == kspace.shape:
                _remember(key, maps)
                return maps
        except (OSError, ValueError):
            pass
    if kspace.shape[0] == 1:
        maps = np.ones_like(kspace, dtype=np.complex64)
    elif method == "espirit":
        from mriviewer.core.physics.espirit import espirit_torch

        # sigpy's EspiritCalib (square) / espirit_maps (rectangle), computed in torch: same maps
        # to 1e-3 per pixel up to phase, 2x faster (issue 14); square regions keep kernel 6
        if kernel is None and square and region[0] >= SQUARE_CALIB_MIN:
            kernel = (ESPIRIT_KERNEL, ESPIRIT_KERNEL)
        maps = espirit_torch(kspace, region, kernel=kernel, crop=crop)
    elif method == "jsense":
        maps = sigpy.mri.app.JsenseRecon(
            kspace.astype(np.complex64),
            ksp_calib_width=min(region),
            mps_ker_width=8,
            show_pbar=False,
        ).run()
    elif method == "lowres":
        maps = lowres_maps(kspace, region)
    else:
        raise ReconError(f"unknown coil-map method {method!r}; use 'espirit', 'jsense' or 'lowres'")
    maps = np.asarray(maps, dtype=np.complex64)
    if not np.any(np.abs(maps) > 1e-6):
        # ESPIRiT finds no eigenvector above threshold when the calibration block is too small
        # (e.g. a narrow 1-D ACS): fall back to normalised low-resolution coil images.
        maps = lowres_maps(kspace, region)
    _remember(key, maps)
    if disk_cache:
        from mriviewer.core.io.atomic import atomic_write_path

        try:
            with atomic_write_path(disk_file) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, maps, allow_pickle=False)
        except OSError:
            pass  # a cache that cannot be written is not an error
    return maps


def lowres_maps(kspace: np.ndarray, calib: CalibRegion) -> np.ndarray:
    """Coil maps as low-resolution coil images (Hann-windowed centre of k-space) over their RSS."""
    from mriviewer.core.physics.fft import ifft2c_np

    _, h, w = kspace.shape
    wy = np.zeros(h)
    wx = np.zeros(w)
    cy, cx = _region(calib, (h, w))
    wy[(h - cy) // 2 : (h - cy) // 2 + cy] = np.hanning(cy)
    wx[(w - cx) // 2 : (w - cx) // 2 + cx] = np.hanning(cx)
    low = ifft2c_np(kspace * (wy[:, None] * wx[None, :])[None])
    norm = np.sqrt((np.abs(low) ** 2).sum(0, keepdims=True))
    return (low / np.maximum(norm, 1e-6 * norm.max())).astype(np.complex64)


def _remember(key: str, maps: np.ndarray) -> None:
    _MEMORY_CACHE[key] = maps
    _MEMORY_CACHE.move_to_end(key)
    while len(_MEMORY_CACHE) > _MEMORY_CACHE_SIZE:
        _MEMORY_CACHE.popitem(last=False)


def clear_memory_cache() -> None:
    """Forget every in-memory coil map."""
    _MEMORY_CACHE.clear()
