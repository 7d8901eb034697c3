"""Weight masks on unrolled networks through ``torch.nn.utils.prune``.

A masked layer holds ``weight_orig`` (the trainable parameter) and the buffer ``weight_mask``;
a forward pre-hook sets ``weight = weight_orig * weight_mask`` before every forward, so pruned
weights stay zero through every optimiser step (their gradient is zero and whatever Adam does to
``weight_orig`` there is multiplied by 0). Masks are named by the logical weight name, e.g.
``denoisers.0.net.0.weight``; density is the kept fraction.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from mriviewer.core.errors import ConfigError
from mriviewer.core.pruning.settings import check_density

PRUNABLE_TYPES = (nn.Conv2d,)
MASK_SUFFIX = ".mask"
INFO_ATTR = "_mriviewer_pruning"  # {"method": "pun-it", "settings": {...}} on a pruned model


def _module_of(model: nn.Module, name: str) -> nn.Module:
    module_name = name.rsplit(".", 1)[0] if "." in name else ""
    return model.get_submodule(module_name)


def conv_weight_names(model: nn.Module) -> list[str]:
    """Names of every conv weight (``MODULE.weight``) in module order."""
    return [
        f"{name}.weight" if name else "weight"
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES)
    ]


def first_last_names(model: nn.Module) -> tuple[set[str], set[str]]:
    """Each denoiser's first (2 -> F) and last (F -> 2) conv weight names."""
    first: set[str] = set()
    last: set[str] = set()
    denoisers = getattr(model, "denoisers", None)
    groups = (
        [(f"denoisers.{i}.", d) for i, d in enumerate(denoisers)]
        if denoisers is not None
        else [("", model)]
    )
    for prefix, denoiser in groups:
        names = [prefix + n for n in conv_weight_names(denoiser)]
        if names:
            first.add(names[0])
            last.add(names[-1])
    return first, last


def select_prunable(
    model: nn.Module, layers: list[str] | None = None, exempt: list[str] | None = None
) -> list[str]:
    """The prunable weight names: conv weights matching ``layers`` minus ``exempt``.

    layers/exempt: fnmatch patterns over names like ``denoisers.0.net.2.weight`` (the trailing
    ``.weight`` may be left out); exempt also takes ``first`` / ``last``. A pattern matching no
    conv weight raises ConfigError listing the names there are.
    """
    layers = list(layers or ["*"])
    exempt = list(exempt or [])
    convs = conv_weight_names(model)
    if not convs:
        raise ConfigError("the model has no conv weights to prune")

    def matches(pattern: str) -> set[str]:
        return {
            n
            for n in convs
            if fnmatch.fnmatchcase(n, pattern)
            or fnmatch.fnmatchcase(n.removesuffix(".weight"), pattern)
        }

    def unknown(pattern: str) -> ConfigError:
        shown = ", ".join(convs[:8]) + (" ..." if len(convs) > 8 else "")
        return ConfigError(
            f"prune layer {pattern!r} matches no conv weight of this model; names are: {shown}"
        )

    chosen: set[str] = set()
    for pattern in layers:
        found = matches(pattern)
        if not found:
            raise unknown(pattern)
        chosen |= found
    first, last = first_last_names(model)
    for pattern in exempt:
        if pattern == "first":
            chosen -= first
        elif pattern == "last":
            chosen -= last
        else:
            found = matches(pattern)
            if not found:
                raise unknown(pattern)
            chosen -= found
    if not chosen:
        raise ConfigError("no prunable weights left after the exemptions")
    return [n for n in convs if n in chosen]


def is_masked(module: nn.Module) -> bool:
    """Whether ``module.weight`` is under a prune mask."""
    return hasattr(module, "weight_mask") and hasattr(module, "weight_orig")


def param_key(model: nn.Module, name: str) -> str:
    """The parameter that holds weight ``name``: ``...weight_orig`` when masked, else ``name``."""
    return name + "_orig" if is_masked(_module_of(model, name)) else name


def effective_weight(model: nn.Module, name: str) -> torch.Tensor:
    """``weight_orig * weight_mask`` (masked) or the plain weight, detached."""
    module = _module_of(model, name)
    if is_masked(module):
        return (module.weight_orig * module.weight_mask).detach()
    return getattr(module, name.rsplit(".", 1)[-1]).detach()


def current_masks(model: nn.Module, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """``{name: bool mask}`` of masked layers (of ``names``, default every masked conv)."""
    out = {}
    for name in names if names is not None else conv_weight_names(model):
        module = _module_of(model, name)
        if is_masked(module):
            out[name] = module.weight_mask.detach().bool()
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Put ``masks`` on the named weights (new prune hooks, or replace an existing mask in place)."""
    for name, mask in masks.items():
        module = _module_of(model, name)
        if not isinstance(module, PRUNABLE_TYPES) or not name.endswith(".weight"):
            raise ConfigError(f"{name!r} is not a prunable conv weight")
        if is_masked(module):
            target = module.weight_mask
            if tuple(mask.shape) != tuple(target.shape):
                raise ConfigError(
                    f"mask for {name} has shape {list(mask.shape)}, needs {list(target.shape)}"
                )
            with torch.no_grad():
                target.copy_(mask.to(target.dtype))
                module.weight = module.weight_orig * module.weight_mask
        else:
            weight = module.weight
            if tuple(mask.shape) != tuple(weight.shape):
                raise ConfigError(
                    f"mask for {name} has shape {list(mask.shape)}, needs {list(weight.shape)}"
                )
            prune.custom_from_mask(
                module, "weight", mask.to(device=weight.device, dtype=weight.dtype)
            )


def dense_masks(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """All-ones masks for ``names`` (to attach prune hooks before any pruning)."""
    return {n: torch.ones_like(effective_weight(model, n), dtype=torch.bool) for n in names}


def kept_count(total: int, density: float) -> int:
    """``round(density * total)``, at least 1: the exact number of weights a density keeps."""
    density = check_density(density)
    return max(1, min(total, int(round(density * total))))


def global_topk(
    scores: dict[str, torch.Tensor], k: int, min_layer_density: float = 0.0
) -> dict[str, torch.Tensor]:
    """Bool masks keeping exactly the ``k`` largest scores over all tensors together.

    min_layer_density > 0 guards against layer collapse: each tensor first keeps its own top
    ``ceil(min_layer_density * numel)``, the rest of the ``k`` go to the largest scores left.
    """
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    if not 0 < k <= flat.numel():
        raise ConfigError(f"cannot keep {k} of {flat.numel()} weights")
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if min_layer_density > 0:
        offset = 0
        for n in names:
            size = scores[n].numel()
            reserve = min(size, math.ceil(min_layer_density * size))
            top = torch.topk(flat[offset : offset + size], reserve, sorted=False).indices
            keep[offset + top] = True
            offset += size
        reserved = int(keep.sum())
        if reserved > k:
            raise ConfigError(
                f"min_layer_density {min_layer_density} keeps {reserved} weights, more than "
                f"the {k} the density allows"
            )
        rest = torch.where(keep, torch.full_like(flat, -math.inf), flat)
        keep[torch.topk(rest, k - reserved, sorted=False).indices] = True
    else:
        keep[torch.topk(flat, k, sorted=False).indices] = True
    out = {}
    offset = 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[offset : offset + size].reshape(scores[n].shape)
        offset += size
    return out


def magnitude_masks(
    model: nn.Module, names: list[str], density: float, min_layer_density: float = 0.0
) -> dict[str, torch.Tensor]:
    """Global magnitude masks keeping ``round(density * total)`` weights of ``names``.

    Weights already pruned are never revived (they rank below every kept weight).
    """
    scores = {}
    for n in names:
        weight = effective_weight(model, n).abs().float()
        module = _module_of(model, n)
        if is_masked(module):
            weight = torch.where(module.weight_mask.bool(), weight, torch.full_like(weight, -1.0))
        scores[n] = weight
    total = sum(s.numel() for s in scores.values())
    return global_topk(scores, kept_count(total, density), min_layer_density)


def density_report(
    model: nn.Module, names: list[str] | None = None, masks: dict[str, torch.Tensor] | None = None
) -> dict[str, Any]:
    """Kept fraction overall and per layer: ``{"density", "kept", "total", "layers": {name:
    {"density", "kept", "total"}}}``.

    Per layer the kept count comes from ``masks`` when given, else the layer's prune mask, else
    its nonzero weights. names: default every conv weight.
    """
    names = names if names is not None else conv_weight_names(model)
    layers = {}
    kept_all = total_all = 0
    for n in names:
        if masks is not None and n in masks:
            mask = masks[n].bool()
        else:
            module = _module_of(model, n)
            mask = (
                module.weight_mask.bool() if is_masked(module) else effective_weight(model, n) != 0
            )
        kept, total = int(mask.sum()), int(mask.numel())
        layers[n] = {"density": kept / total, "kept": kept, "total": total}
        kept_all += kept
        total_all += total
    return {
        "density": kept_all / total_all if total_all else 1.0,
        "kept": kept_all,
        "total": total_all,
        "layers": layers,
    }


def make_permanent(model: nn.Module) -> nn.Module:
    """Remove every prune hook in place: ``weight`` becomes the plain masked tensor."""
    for _, module in model.named_modules():
        if is_masked(module):
            prune.remove(module, "weight")
    return model


def export_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(state, masks)`` for saving: the plain state dict with pruned weights zero, and
    ``{"NAME.mask": bool tensor}`` for every masked weight (empty for a dense model)."""
    current = current_masks(model)
    masks = {f"{n}{MASK_SUFFIX}": m.cpu().contiguous() for n, m in current.items()}
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("_mask") and key.removesuffix("_mask") in current:
            continue
        if key.endswith("_orig") and key.removesuffix("_orig") in current:
            name = key.removesuffix("_orig")
            value = value * current[name].to(value.dtype)
            key = name
        state[key] = value.detach().to("cpu").contiguous()
    return state, masks


def set_info(model: nn.Module, method: str, settings: dict[str, Any] | None = None) -> None:
    """Record on the model how it was pruned (read by :func:`export_state` users / the card)."""
    setattr(model, INFO_ATTR, {"method": method, "settings": settings or {}})


def get_info(model: nn.Module) -> dict[str, Any] | None:
    """What :func:`set_info` recorded, or None."""
    return getattr(model, INFO_ATTR, None)


def fan_in_rescale(model: nn.Module, names: list[str]) -> dict[str, tuple[int, int, float]]:
    """Sparsity-aware initialisation of masked conv weights, in place.

    Each output channel's kept weights (``weight_orig`` where ``weight_mask`` is 1) are scaled
    by ``sqrt(fan_in / kept_fan_in)`` (fan_in = in_channels * kh * kw of the dense layer;
    channels with nothing kept are left alone), so the pruned layer's output variance at
    initialisation equals the dense layer's (Evci et al., AAAI 2022, "Gradient flow in sparse
    neural networks and how lottery tickets win"). Returns ``{name: (channels with kept weights,
    channels with none, sum of their scales)}``. Raises ConfigError for a name without a mask.
    """
    scales: dict[str, tuple[int, int, float]] = {}
    for name in names:
        module = _module_of(model, name)
        if not is_masked(module):
            raise ConfigError(f"{name} has no pruning mask to rescale")
        mask = module.weight_mask.detach()
        fan_in = mask[0].numel()
        kept = mask.reshape(mask.shape[0], -1).sum(dim=1)
        factor = torch.where(kept > 0, (fan_in / kept.clamp(min=1)).sqrt(), torch.ones_like(kept))
        with torch.no_grad():
            module.weight_orig.mul_(factor.view(-1, *([1] * (mask.dim() - 1))).to(mask.dtype))
            module.weight = module.weight_orig * module.weight_mask
        used = factor[kept > 0]
        scales[name] = (int(used.numel()), int((kept == 0).sum()), float(used.sum()))
    return scales
