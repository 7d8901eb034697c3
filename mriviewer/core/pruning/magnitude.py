"""Global magnitude pruning: during training (PUN-WT) and after training in rounds (PUN-AT).

PUN-WT: between ``start_fraction`` and ``end_fraction`` of the run, every ``every`` steps, the
density follows ``target + (1 - target) (1 - t)^3`` (cubic, Zhu & Gupta) or ``1 - (1 - target) t``
(linear), ``t`` the fraction of that window done; the last step always prunes to the target.

PUN-AT: round ``n`` of ``R`` keeps ``density^(n/R)`` (a constant rate ``r = 1 - density^(1/R)``
per round, ``(1 - r)^R = density``), with fine-tuning after each round; ``rewind = init`` resets
the kept weights to their initial values before each fine-tuning (lottery-ticket rewinding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mriviewer.core.errors import ConfigError
from mriviewer.core.pruning.masks import (
    apply_masks,
    density_report,
    magnitude_masks,
)
from mriviewer.core.pruning.settings import PruneSettings, check_density


def wt_density(step: int, total_steps: int, settings: PruneSettings) -> float:
    """PUN-WT target density after optimiser step ``step`` of ``total_steps``."""
    target = settings.density
    if step >= total_steps:
        return target
    start = settings.start_fraction * total_steps
    end = settings.end_fraction * total_steps
    t = min(max((step - start) / max(end - start, 1e-9), 0.0), 1.0)
    if settings.schedule == "linear":
        return 1.0 - (1.0 - target) * t
    return target + (1.0 - target) * (1.0 - t) ** 3


def wt_should_prune(step: int, total_steps: int, settings: PruneSettings) -> bool:
    """Whether PUN-WT prunes after step ``step`` (every ``every`` steps in the window, and last)."""
    if step >= total_steps:
        return True
    start = settings.start_fraction * total_steps
    return step >= start and step % settings.every == 0


def at_round_densities(density: float, rounds: int) -> list[float]:
    """Density after each PUN-AT round: ``density^(n/rounds)``, the last exactly ``density``."""
    density = check_density(density)
    if int(rounds) < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    out = [density ** ((n + 1) / rounds) for n in range(int(rounds))]
    out[-1] = density
    return out


def at_round_steps(total_steps: int, settings: PruneSettings) -> list[int]:
    """Optimiser steps after which a PUN-AT run inside one training run prunes (dense phase
    first, then ``rounds`` rounds of ``finetune_steps``)."""
    dense = total_steps - settings.rounds * settings.finetune_steps
    if dense < 1:
        raise ConfigError(
            f"PUN-AT needs steps > rounds x finetune_steps ({settings.rounds} x "
            f"{settings.finetune_steps}) so the model trains dense first; got {total_steps} steps"
        )
    return [dense + n * settings.finetune_steps for n in range(settings.rounds)]


def magnitude_prune(
    model: nn.Module, names: list[str], density: float, min_layer_density: float = 0.0
) -> dict[str, Any]:
    """Prune ``names`` by global magnitude to ``density`` (never reviving pruned weights; each
    layer keeps at least ``min_layer_density``). Returns the density report after pruning.
    """
    apply_masks(model, magnitude_masks(model, names, density, min_layer_density))
    return density_report(model, names)


def rewind(model: nn.Module, initial_state: dict[str, torch.Tensor]) -> None:
    """Copy the initial values into every parameter (``X.weight_orig`` takes ``X.weight``); the
    masks stay, so pruned weights stay zero."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            key = name.removesuffix("_orig")
            if key not in initial_state:
                raise ConfigError(f"initial weights have no {key!r}; cannot rewind")
            param.copy_(initial_state[key].to(param.device, param.dtype))


def prune_after_training(
    model: nn.Module,
    names: list[str],
    settings: PruneSettings,
    finetune: Callable[[nn.Module, int], dict[str, Any] | None],
    initial_state: dict[str, torch.Tensor] | None = None,
) -> list[dict[str, Any]]:
    """PUN-AT in place: ``settings.rounds`` rounds of global magnitude pruning, each followed by
    ``finetune(model, round)`` (masks fixed). ``rewind = init`` needs ``initial_state``.

    Returns one record per round: round, target density, reached density, per-layer densities and
    whatever ``finetune`` returned.
    """
    settings = PruneSettings.from_dict(settings)
    if settings.rewind == "init" and initial_state is None:
        raise ConfigError("rewind = init needs the initial weights")
    history = []
    for n, target in enumerate(at_round_densities(settings.density, settings.rounds), start=1):
        report = magnitude_prune(model, names, target, settings.min_layer_density)
        if settings.rewind == "init":
            rewind(model, initial_state)
        record: dict[str, Any] = {
            "round": n,
            "target_density": target,
            "density": report["density"],
            "layers": {k: v["density"] for k, v in report["layers"].items()},
        }
        extra = finetune(model, n)
        if extra:
            record.update(extra)
        history.append(record)
        if not math.isclose(report["density"], target, abs_tol=1.0 / report["total"]):
            raise ConfigError(f"round {n} reached density {report['density']}, not {target}")
    return history
