"""What is saved with a pruned model and what cards and ``mriviewer info`` say about it.

This module needs nothing from :mod:`mriviewer.core.checkpoints`, which calls it when it saves
a model (:func:`export_for_save`) and when it describes one (:func:`read_weight_masks`,
:func:`check_masks`, :func:`describe_pruning`); loading a pruned model with its masks is
:func:`mriviewer.core.pruning.export.load_pruned`, above the checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mriviewer.core.errors import ModelCardError
from mriviewer.core.pruning.accounting import (
    DEFAULT_COILS,
    DEFAULT_SIZE,
    flop_report,
    parameter_report,
    training_size,
)
from mriviewer.core.pruning.masks import (
    MASK_SUFFIX,
    current_masks,
    density_report,
    export_state,
    get_info,
    set_info,
)


def pruning_record(
    model: nn.Module,
    card_dict: dict[str, Any] | None = None,
    masks: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Card/info record: method, settings, density (kept fraction of the masked weights; 1.0 and
    all conv weights for a dense model), per-layer densities, parameters and FLOPs.

    FLOPs are counted at the card's training size (else 256 x 256, 8 coils).
    """
    if masks is None:
        masks = current_masks(model)
    info = get_info(model) or {}
    report = density_report(model, list(masks) if masks else None, masks=masks or None)
    size = training_size(card_dict)
    h, w, coils = size if size else (*DEFAULT_SIZE, DEFAULT_COILS)
    method = info.get("method") or ("masked" if masks else "dense")
    return {
        "method": method,
        "settings": info.get("settings", {}),
        "density": report["density"] if masks else 1.0,
        "kept": report["kept"],
        "prunable": report["total"],
        "layers": {k: v["density"] for k, v in report["layers"].items()},
        "params": parameter_report(model, masks or None),
        "flops": flop_report(model, h, w, coils, masks or None)
        | {"size_from": "training data" if size else "default"},
    }


def export_for_save(
    model: nn.Module, card_dict: dict[str, Any] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(weights, masks, record)`` to write: plain weights (pruned entries zero), the
    ``NAME.mask`` tensors and the card record (None and no masks for an unpruned model)."""
    state, masks = export_state(model)
    if not masks:
        return state, {}, None
    plain_masks = {k.removesuffix(MASK_SUFFIX): v for k, v in masks.items()}
    return state, masks, pruning_record(model, card_dict, plain_masks)


def split_masks(
    tensors: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(weights, {weight name: mask})`` from the tensors of a saved file."""
    masks = {k.removesuffix(MASK_SUFFIX): v for k, v in tensors.items() if k.endswith(MASK_SUFFIX)}
    weights = {k: v for k, v in tensors.items() if not k.endswith(MASK_SUFFIX)}
    return weights, masks


def read_weight_masks(weights_path: str | Path) -> dict[str, torch.Tensor]:
    """The ``{weight name: bool mask}`` stored in a safetensors weights file (empty when dense)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as fh:
            return {
                k.removesuffix(MASK_SUFFIX): fh.get_tensor(k).bool()
                for k in fh.keys()  # noqa: SIM118 - safe_open has no __iter__
                if k.endswith(MASK_SUFFIX)
            }
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a clean error
        raise ModelCardError(f"cannot read masks ({exc})", weights_path) from exc


def check_masks(model: nn.Module, masks: dict[str, torch.Tensor], path: str | Path) -> None:
    """ModelCardError unless every mask names a weight of the model with its shape."""
    state = model.state_dict()
    for name, mask in masks.items():
        if name not in state:
            raise ModelCardError(f"mask {name}{MASK_SUFFIX} names no weight of the model", path)
        if tuple(mask.shape) != tuple(state[name].shape):
            raise ModelCardError(
                f"mask {name}{MASK_SUFFIX} has shape {list(mask.shape)}, the weight "
                f"{list(state[name].shape)}",
                path,
            )


def describe_pruning(
    model: nn.Module, card_dict: dict[str, Any], masks: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """The keys ``mriviewer info MODEL`` adds: ``density``, ``density_per_layer``, ``params``,
    ``flops``, ``pruning`` (method and settings)."""
    denoiser = model.config().get("denoiser", "2d") if hasattr(model, "config") else "2d"
    if denoiser != "2d":  # conv counts and FLOPs are defined for Conv2d denoisers only
        note = (
            f"{denoiser} (cine) denoiser: conv densities and FLOPs are counted for 2-D "
            "denoisers only"
        )
        return {
            "density": None,
            "density_per_layer": {},
            "params": {"total": int(sum(p.numel() for p in model.parameters()))},
            "flops": None,
            "pruning": {"method": "dense", "note": note},
        }
    record = card_dict.get("extra", {}).get("pruning", {})
    if record:
        set_info(model, record.get("method", "masked"), record.get("settings", {}))
    out = pruning_record(model, card_dict, masks or None)
    return {
        "density": out["density"],
        "density_per_layer": out["layers"],
        "params": out["params"],
        "flops": out["flops"],
        "pruning": {
            "method": out["method"] if masks else "dense",
            "settings": out["settings"],
            "kept": out["kept"],
            "prunable": out["prunable"],
        },
    }


__all__ = [
    "check_masks",
    "describe_pruning",
    "export_for_save",
    "pruning_record",
    "read_weight_masks",
    "split_masks",
]
