"""Image-quality metrics exactly as fastMRI's evaluate.py computes them, on magnitude images.

Per slice: inputs ``(h, w)``; per volume: ``(S, h, w)``. ``data_range`` is the reference's
maximum (over the slice for per-slice figures, over the volume for per-volume figures).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mriviewer.core.errors import ReconError


def _prepare(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.abs(np.asarray(gt)).astype(np.float64)
    pred = np.abs(np.asarray(pred)).astype(np.float64)
    if gt.shape != pred.shape:
        raise ReconError(f"metric shapes differ: reference {gt.shape} vs prediction {pred.shape}")
    if gt.size == 0:
        raise ReconError("metric on an empty image")
    return gt, pred


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised MSE ``||gt - pred||^2 / ||gt||^2``."""
    gt, pred = _prepare(gt, pred)
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def nrmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised RMSE ``||gt - pred|| / ||gt||``."""
    return float(np.sqrt(nmse(gt, pred)))


def psnr(gt: np.ndarray, pred: np.ndarray, data_range: float | None = None) -> float:
    """PSNR in dB with ``data_range = gt.max()`` unless given (skimage)."""
    gt, pred = _prepare(gt, pred)
    dr = float(gt.max()) if data_range is None else float(data_range)
    return float(peak_signal_noise_ratio(gt, pred, data_range=dr))


def ssim(gt: np.ndarray, pred: np.ndarray, data_range: float | None = None) -> float:
    """SSIM (skimage, 7x7 window) with ``data_range = gt.max()``; mean over slices for volumes."""
    gt, pred = _prepare(gt, pred)
    dr = float(gt.max()) if data_range is None else float(data_range)
    if gt.ndim == 2:
        return float(structural_similarity(gt, pred, data_range=dr))
    if gt.ndim != 3:
        raise ReconError(f"SSIM expects (h, w) or (S, h, w), got {gt.shape}")
    return float(
        np.mean([structural_similarity(g, p, data_range=dr) for g, p in zip(gt, pred, strict=True)])
    )


def _region_ssim(gt: np.ndarray, pred: np.ndarray, region: np.ndarray, dr: float) -> float:
    _, ssim_map = structural_similarity(gt, pred, data_range=dr, full=True)
    return float(np.mean(ssim_map[region]))


def frame_psnr_ssim(
    gt: np.ndarray,
    pred: np.ndarray,
    data_range: float,
    region: np.ndarray | None = None,
) -> tuple[float, float]:
    """PSNR (dB) and SSIM of one ``(h, w)`` frame with a given ``data_range`` (a cine series'
    maximum), over the bool ``region``'s pixels when given (as :func:`region_metrics`)."""
    gt, pred = _prepare(gt, pred)
    dr = float(data_range)
    if region is None:
        return psnr(gt, pred, dr), ssim(gt, pred, dr)
    region = np.asarray(region, dtype=bool)
    if region.shape != gt.shape or not region.any():
        raise ReconError(f"metric region {region.shape} is empty or does not match {gt.shape}")
    mse = float(np.mean((gt - pred)[region] ** 2))
    value = float(10 * np.log10(dr**2 / mse)) if mse > 0 else float("inf")
    return value, _region_ssim(gt, pred, region, dr)


def region_metrics(gt: np.ndarray, pred: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """The metrics of :func:`all_metrics` over the pixels of a bool ``region`` (``(h, w)``, or
    ``(S, h, w)`` for a volume).

    ``data_range`` stays ``gt.max()`` over the whole image; PSNR and NMSE use the region's
    pixels only; SSIM is the mean of skimage's SSIM map (7x7 window, computed on the whole
    image) over the region. Raises ReconError for mismatched shapes or an empty region.
    """
    gt_m, pred_m = _prepare(gt, pred)
    region = np.asarray(region, dtype=bool)
    if region.shape != gt_m.shape:
        raise ReconError(f"metric region {region.shape} does not match the image {gt_m.shape}")
    if not region.any():
        raise ReconError("metric region is empty")
    dr = float(gt_m.max())
    diff = (gt_m - pred_m)[region]
    ref = gt_m[region]
    mse = float(np.mean(diff**2))
    nmse_value = float(np.sum(diff**2) / np.sum(ref**2))
    if gt_m.ndim == 2:
        ssim_value = _region_ssim(gt_m, pred_m, region, dr)
    else:  # (S, h, w): mean over slices, as fastMRI
        ssim_value = float(
            np.mean(
                [
                    _region_ssim(g, p, r, dr)
                    for g, p, r in zip(gt_m, pred_m, region, strict=True)
                    if r.any()
                ]
            )
        )
    return {
        "psnr": float(10 * np.log10(dr**2 / mse)) if mse > 0 else float("inf"),
        "ssim": ssim_value,
        "nmse": nmse_value,
        "nrmse": float(np.sqrt(nmse_value)),
        "data_range": dr,
    }


def all_metrics(
    gt: np.ndarray, pred: np.ndarray, region: np.ndarray | None = None
) -> dict[str, float]:
    """``{"psnr", "ssim", "nmse", "nrmse", "data_range"}`` of ``pred`` against ``gt``
    (over the bool ``region`` when given: :func:`region_metrics`)."""
    if region is not None:
        return region_metrics(gt, pred, region)
    gt_m, pred_m = _prepare(gt, pred)
    dr = float(gt_m.max())
    return {
        "psnr": psnr(gt_m, pred_m, dr),
        "ssim": ssim(gt_m, pred_m, dr),
        "nmse": nmse(gt_m, pred_m),
        "nrmse": nrmse(gt_m, pred_m),
        "data_range": dr,
    }
