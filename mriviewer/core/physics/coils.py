"""Coil sensitivity maps through sigpy (ESPIRiT, JSENSE), cached per (file, slice, settings)."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mriviewer.core.errors import ReconError

_MEMORY_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_MEMORY_CACHE_SIZE = 64


def cache_dir() -> Path:
    """Disk cache folder for coil maps (``$MRIVIEWER_CACHE`` or ``~/.cache/mriviewer/coilmaps``)."""
    root = os.environ.get("MRIVIEWER_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "mriviewer"
    return base / "coilmaps"


def _key(kspace: np.ndarray, method: str, calib: int, crop: float, source: str | None) -> str:
    h = hashlib.sha256()
    h.update(f"{method}|{calib}|{crop:.4f}|{source}|{kspace.shape}".encode())
    if source is None:
        # No stable file identity: hash the calibration data itself.
        c, hh, ww = kspace.shape
        cy, cx = hh // 2, ww // 2
        h.update(
            np.ascontiguousarray(
                kspace[
                    :, cy - calib // 2 : cy + calib // 2 + 1, cx - calib // 2 : cx + calib // 2 + 1
                ]
            ).tobytes()
        )
    return h.hexdigest()[:32]


def estimate_coil_maps(
    kspace: np.ndarray,
    method: str = "espirit",
    calib: int = 24,
    crop: float = 0.95,
    source: str | None = None,
    disk_cache: bool = False,
) -> np.ndarray:
    """Estimate ``(C, H, W)`` complex64 coil maps from ``(C, H, W)`` k-space.

    method: ``espirit`` (sigpy EspiritCalib, calibration width ``calib``, eigenvalue crop
    ``crop``) or ``jsense`` (sigpy JsenseRecon, kernel width 8 on ``calib`` central lines).
    source: a stable identity such as ``"file.h5#slice3"``; cache entries are keyed by it (else
    by the calibration data). disk_cache: also keep the maps under :func:`cache_dir`.
    A single-coil input returns ones (phase taken from the low-resolution image for 1 coil).
    """
    import sigpy.mri

    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise ReconError(f"coil-map estimation needs (C, H, W) k-space, got {kspace.shape}")
    if not np.all(np.isfinite(kspace)):
        raise ReconError("k-space contains NaN/Inf; cannot estimate coil maps")
    calib = int(max(4, min(calib, min(kspace.shape[-2:]))))
    key = _key(kspace, method, calib, crop, source)
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
        maps = sigpy.mri.app.EspiritCalib(
            kspace.astype(np.complex64), calib_width=calib, crop=crop, show_pbar=False
        ).run()
    elif method == "jsense":
        maps = sigpy.mri.app.JsenseRecon(
            kspace.astype(np.complex64), ksp_calib_width=calib, mps_ker_width=8, show_pbar=False
        ).run()
    elif method == "lowres":
        maps = lowres_maps(kspace, calib)
    else:
        raise ReconError(f"unknown coil-map method {method!r}; use 'espirit', 'jsense' or 'lowres'")
    maps = np.asarray(maps, dtype=np.complex64)
    if not np.any(np.abs(maps) > 1e-6):
        # ESPIRiT finds no eigenvector above threshold when the calibration block is too small
        # (e.g. a narrow 1-D ACS): fall back to normalised low-resolution coil images.
        maps = lowres_maps(kspace, calib)
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


def lowres_maps(kspace: np.ndarray, calib: int) -> np.ndarray:
    """Coil maps as low-resolution coil images (Hann-windowed centre of k-space) over their RSS."""
    from mriviewer.core.physics.fft import ifft2c_np

    _, h, w = kspace.shape
    wy = np.zeros(h)
    wx = np.zeros(w)
    cy, cx = min(calib, h), min(calib, w)
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
