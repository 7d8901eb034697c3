"""Parameter and operation counts of a whole unrolled forward pass, dense and pruned.

Conv layers: ``nnz(W) * H_out * W_out`` multiply-adds per application (dense: ``numel(W)``),
summed over the convs each unroll uses, over all N unrolls (a shared denoiser counts N times).
Data consistency (not pruned): real FLOPs with an FFT of N pixels costing ``5 N log2 N`` and a
complex product 6. One normal operator ``A^H A x`` is ``2 C`` FFTs plus ``3 C N`` complex products
(coil maps, mask, conjugate maps + coil sum); a CG iteration adds about 5 N complex
multiply-adds (two inner products, three updates). MoDL runs ``cg_iters`` CG iterations per
unroll (the cap: tolerance-based early stops make the real count lower); PGD one normal operator.
Both start with ``A^H y``: C FFTs and C N products. Totals are in FLOPs (1 multiply-add = 2).
Unstructured sparsity does not make dense kernels faster: these are operation counts, not times.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mriviewer.core.pruning.masks import (
    PRUNABLE_TYPES,
    conv_weight_names,
    density_report,
    effective_weight,
)

DEFAULT_SIZE = (256, 256)
DEFAULT_COILS = 8
COMPLEX_PRODUCT_FLOPS = 6
COMPLEX_MAC_FLOPS = 8


def fft_flops(pixels: int) -> float:
    """``5 N log2 N`` real FLOPs of one complex FFT of ``N`` pixels."""
    return 5.0 * pixels * math.log2(max(pixels, 2))


def _conv_output_pixels(conv: nn.Conv2d, h: int, w: int) -> int:
    out = []
    for size, k, s, p, d in zip(
        (h, w), conv.kernel_size, conv.stride, conv.padding, conv.dilation, strict=True
    ):
        pad = p if isinstance(p, int) else (k - 1) // 2  # 'same'
        out.append((size + 2 * pad - d * (k - 1) - 1) // s + 1)
    return int(out[0] * out[1])


def conv_macs(
    model: nn.Module,
    height: int,
    width: int,
    masks: dict[str, torch.Tensor] | None = None,
) -> dict[str, int]:
    """Conv multiply-adds of one forward of all N unrolls: ``{"dense", "pruned"}``.

    Which convs an unroll uses comes from ``model.unroll_parameters(k)``; every conv is assumed
    to see the ``height x width`` image (true of the project's denoisers). Pruned counts use
    ``masks`` when given, else the layers' prune masks / nonzero weights.
    """
    convs = {}
    for name in conv_weight_names(model):
        module = model.get_submodule(name.rsplit(".", 1)[0])
        assert isinstance(module, PRUNABLE_TYPES)
        params = list(module.parameters(recurse=False))
        if masks is not None and name in masks:
            nnz = int(masks[name].bool().sum())
        else:
            nnz = int(density_report(model, [name])["kept"])
        convs[name] = (
            {id(p) for p in params},
            effective_weight(model, name).numel(),
            nnz,
            _conv_output_pixels(module, height, width),
        )
    dense = pruned = 0
    for k in range(model.num_unrolls):
        used = {id(p) for p in model.unroll_parameters(k)}
        for ids, numel, nnz, pixels in convs.values():
            if ids & used:
                dense += numel * pixels
                pruned += nnz * pixels
    return {"dense": dense, "pruned": pruned}


def data_consistency_flops(model: nn.Module, height: int, width: int, coils: int) -> dict[str, Any]:
    """Real FLOPs of everything that is not a conv (see the module docstring)."""
    pixels = height * width
    normal = 2 * coils * fft_flops(pixels) + 3 * coils * pixels * COMPLEX_PRODUCT_FLOPS
    adjoint = coils * fft_flops(pixels) + coils * pixels * COMPLEX_PRODUCT_FLOPS
    n = int(getattr(model, "num_unrolls", 1))
    name = getattr(model, "name", "")
    if name == "modl":
        cg_iters = int(model.cg_iters)
        per_unroll = (
            cg_iters * (normal + 5 * pixels * COMPLEX_MAC_FLOPS) + 2 * pixels * COMPLEX_MAC_FLOPS
        )
        detail = f"MoDL: {cg_iters} CG iterations (the cap) per unroll"
    elif name == "pgd":
        cg_iters = 0
        per_unroll = normal + 2 * pixels * COMPLEX_MAC_FLOPS
        detail = "PGD: one gradient step A^H(Ax - y) per unroll"
    else:
        cg_iters = 0
        per_unroll = 0.0
        detail = f"unknown architecture {name!r}: data consistency not counted"
    return {"flops": float(adjoint + n * per_unroll), "cg_iterations": cg_iters, "detail": detail}


def flop_report(
    model: nn.Module,
    height: int = DEFAULT_SIZE[0],
    width: int = DEFAULT_SIZE[1],
    coils: int = DEFAULT_COILS,
    masks: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Operation counts of one whole forward at ``height x width`` with ``coils`` coils.

    ``{"image_size", "coils", "unrolls", "conv_macs": {"dense", "pruned"},
    "data_consistency_flops", "dense", "pruned", "reduction", "units", "note"}``; ``dense`` and
    ``pruned`` are total FLOPs (2 per conv multiply-add plus data consistency).
    """
    macs = conv_macs(model, height, width, masks)
    dc = data_consistency_flops(model, height, width, coils)
    dense = 2.0 * macs["dense"] + dc["flops"]
    pruned = 2.0 * macs["pruned"] + dc["flops"]
    return {
        "image_size": [int(height), int(width)],
        "coils": int(coils),
        "unrolls": int(getattr(model, "num_unrolls", 1)),
        "conv_macs": macs,
        "conv_mac_reduction": macs["dense"] / macs["pruned"] if macs["pruned"] else float("inf"),
        "data_consistency_flops": dc["flops"],
        "cg_iterations": dc["cg_iterations"],
        "dense": dense,
        "pruned": pruned,
        "reduction": dense / pruned if pruned else float("inf"),
        "units": "FLOPs (1 conv multiply-add = 2; FFT = 5 N log2 N; complex product = 6)",
        "note": dc["detail"] + "; operation counts, not run times (unstructured zeros do not "
        "speed up dense conv kernels)",
    }


def parameter_report(
    model: nn.Module, masks: dict[str, torch.Tensor] | None = None
) -> dict[str, int]:
    """``{"total", "nonzero", "conv_weights", "conv_weights_kept"}`` (shared tensors counted
    once; a weight under a mask counts as nonzero where the mask keeps it)."""
    total = sum(p.numel() for p in model.parameters())
    report = density_report(model, masks=masks)
    nonzero = total - (report["total"] - report["kept"])
    return {
        "total": int(total),
        "nonzero": int(nonzero),
        "conv_weights": int(report["total"]),
        "conv_weights_kept": int(report["kept"]),
    }


def training_size(card_dict: dict[str, Any] | None) -> tuple[int, int, int] | None:
    """``(H, W, coils)`` of the first training shape recorded in a model card, if any."""
    try:
        shapes = card_dict["training_data"]["train"]["shapes"]
        coils, h, w = (int(v) for v in shapes[0])
        return h, w, coils
    except (KeyError, TypeError, IndexError, ValueError):
        return None
