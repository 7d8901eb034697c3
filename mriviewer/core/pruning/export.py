"""Saving and loading pruned models, and what model cards and ``mriviewer info`` say about them.

A pruned model is saved like any other (:func:`mriviewer.core.checkpoints.save_model`): the
weights with pruning made permanent (pruned entries exactly zero), plus one bool tensor
``NAME.mask`` per masked weight in the same safetensors file, and ``extra.pruning`` in the card
(method, settings, density overall and per layer, parameters, FLOPs at the training size).
:func:`load_pruned` puts the masks back as prune hooks (for fine-tuning with them fixed).

The records and mask files themselves are :mod:`mriviewer.core.pruning.record` (below the
checkpoints, which use it); this module builds on :mod:`mriviewer.core.checkpoints`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mriviewer.core.checkpoints import load_model, model_paths, resolve_model
from mriviewer.core.pruning.masks import apply_masks, set_info
from mriviewer.core.pruning.record import (
    check_masks,
    describe_pruning,
    export_for_save,
    pruning_record,
    read_weight_masks,
    split_masks,
)


def read_masks(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``{weight name: bool mask}`` stored in a saved model (empty when dense)."""
    weights_path, _ = model_paths(resolve_model(path))
    return read_weight_masks(weights_path)


def load_pruned(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """Load a saved model with its stored masks re-applied as prune hooks; ``(model, card)``.

    A dense model comes back without hooks. The method recorded in the card is kept on the model.
    """
    model, card = load_model(path, device=device)
    masks = read_masks(path)
    if masks:
        check_masks(model, masks, path)
        apply_masks(model, {k: v.to(device) for k, v in masks.items()})
        record = card.extra.get("pruning", {})
        set_info(model, record.get("method", "masked"), record.get("settings", {}))
    return model, card


__all__ = [
    "check_masks",
    "describe_pruning",
    "export_for_save",
    "load_pruned",
    "pruning_record",
    "read_masks",
    "split_masks",
]
