"""PUN-IT: learn which initial weights to keep, before any training.

With the initial weights ``theta_0`` frozen, every prunable weight gets a logit ``phi``,
``p = sigmoid(phi)``. Each step samples a relaxed Bernoulli mask by the binary Gumbel-softmax
(``m = sigmoid((log p - log(1-p) + log u - log(1-u)) / T)``, ``u ~ U(0,1)``; the difference of
two Gumbel variables is logistic), or with ``straight_through`` the hard ``m > 0.5`` forward and
the relaxed gradient. The loss is the reconstruction loss of the unrolled net with weights
``theta_0 * m`` (applied with :func:`torch.func.functional_call`, the model code is not copied)
plus ``beta * mean KL(Ber(p) || Ber(density))``. The result is the exact global top-k of ``p``
(``k = round(density * d)``) as a hard mask; training then starts from ``theta_0`` with it fixed.

Strategies: ``e2e``/``checkpoint`` use the loss of the final image; ``gleam`` sums every
module's local loss, each module starting from the detached output of the one before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import functional_call

from mriviewer.core.models import UnrolledNet
from mriviewer.core.pruning.masks import (
    effective_weight,
    global_topk,
    kept_count,
    param_key,
    select_prunable,
)
from mriviewer.core.pruning.settings import PruneSettings

EPS = 1e-6


@dataclass
class SearchResult:
    """Hard masks ``{name: bool}``, final keep probabilities and the logged records."""

    masks: dict[str, torch.Tensor]
    probabilities: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)


def temperature_at(settings: PruneSettings, step: int) -> float:
    """T at search step ``step``: fixed, or exponential from ``temperature`` to ``temperature_final``."""
    if settings.temperature_final is None or settings.search_steps <= 1:
        return float(settings.temperature)
    t = step / (settings.search_steps - 1)
    return float(settings.temperature * (settings.temperature_final / settings.temperature) ** t)


def bernoulli_kl(p: torch.Tensor, q: float) -> torch.Tensor:
    """Elementwise ``KL(Ber(p) || Ber(q))``."""
    p = p.clamp(EPS, 1 - EPS)
    return p * (p.log() - math.log(q)) + (1 - p) * ((1 - p).log() - math.log1p(-q))


def relaxed_mask(
    logits: torch.Tensor, temperature: float, straight_through: bool = False
) -> torch.Tensor:
    """Binary Gumbel-softmax sample of a keep mask in (0, 1) (hard 0/1 when straight-through)."""
    u = torch.rand_like(logits).clamp(EPS, 1 - EPS)
    soft = torch.sigmoid((logits + u.log() - (-u).log1p()) / temperature)
    if not straight_through:
        return soft
    hard = (soft > 0.5).to(soft.dtype)
    return hard + soft - soft.detach()


def masked_loss(
    model: UnrolledNet,
    weights: dict[str, torch.Tensor],
    batch: Any,
    strategy: str = "e2e",
    modules: int = 1,
    loss: str = "l1",
) -> torch.Tensor:
    """Reconstruction loss of ``model`` with its parameters replaced by ``weights`` (by key).

    batch: anything with ``kspace``, ``maps``, ``mask`` and ``target`` tensors.
    """
    from mriviewer.core.training.strategies import image_loss, module_ranges

    args = (batch.kspace, batch.maps, batch.mask)
    if strategy != "gleam":
        return image_loss(functional_call(model, weights, args), batch.target, loss)
    total = None
    x = None
    for start, stop in module_ranges(model.num_unrolls, modules):
        kwargs = {"x0": None if x is None else x.detach(), "start": start, "stop": stop}
        x = functional_call(model, weights, args, kwargs)
        value = image_loss(x, batch.target, loss)
        total = value if total is None else total + value
    assert total is not None
    return total


def pun_it_search(
    model: UnrolledNet,
    batches: Callable[[int], Any],
    settings: PruneSettings,
    names: list[str] | None = None,
    strategy: str = "e2e",
    modules: int = 1,
    loss: str = "l1",
    log: Callable[[dict[str, Any]], None] | None = None,
    generator_seed: int | None = None,
) -> SearchResult:
    """Learn a mask at initialisation (see the module docstring); the model is left unchanged.

    batches: ``step -> batch`` (on the model's device). names: prunable weights (default from
    ``settings.layers``/``exempt``). log: called with each logged record: ``search_step``,
    ``loss`` (relaxed-mask reconstruction loss), ``kl``, ``temperature``, ``expected_density``
    (``sum(p)/d``) and, every ``log_every`` steps and at the end, ``hard_mask_loss`` (the loss
    of the current top-k hard mask on this batch).
    """
    settings = PruneSettings.from_dict(settings)
    names = names or select_prunable(model, settings.layers, settings.exempt)
    keys = {n: param_key(model, n) for n in names}
    theta0 = {n: effective_weight(model, n).clone() for n in names}
    device = next(iter(theta0.values())).device
    total = sum(t.numel() for t in theta0.values())
    k = kept_count(total, settings.density)
    p0 = settings.init_prob if settings.init_prob is not None else settings.density
    p0 = min(max(p0, 1e-4), 1 - 1e-4)
    init = math.log(p0) - math.log1p(-p0)
    logits = {
        n: torch.full_like(t, init, dtype=torch.float32).requires_grad_(True)
        for n, t in theta0.items()
    }
    optimiser = torch.optim.Adam(list(logits.values()), lr=settings.search_lr)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    fork = [device] if device.type == "cuda" else []
    history: list[dict[str, Any]] = []
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=fork):
            if generator_seed is not None:
                torch.manual_seed(generator_seed)
            for step in range(settings.search_steps):
                temperature = temperature_at(settings, step)
                batch = batches(step)
                weights = {
                    keys[n]: theta0[n]
                    * relaxed_mask(logits[n], temperature, settings.straight_through).to(
                        theta0[n].dtype
                    )
                    for n in names
                }
                rec = masked_loss(model, weights, batch, strategy, modules, loss)
                probs = [torch.sigmoid(v) for v in logits.values()]
                kl = torch.cat(
                    [bernoulli_kl(p, settings.density).reshape(-1) for p in probs]
                ).mean()
                objective = rec + settings.beta * kl
                optimiser.zero_grad(set_to_none=True)
                objective.backward()
                optimiser.step()
                record: dict[str, Any] = {
                    "phase": "pun-it search",
                    "search_step": step + 1,
                    "loss": float(rec.detach()),
                    "kl": float(kl.detach()),
                    "temperature": temperature,
                    "expected_density": float(sum(p.detach().sum() for p in probs) / total),
                }
                last = step + 1 == settings.search_steps
                if (step + 1) % settings.log_every == 0 or last:
                    hard = global_topk(
                        {n: v.detach() for n, v in logits.items()},
                        k,
                        settings.min_layer_density,
                    )
                    with torch.no_grad():
                        hard_weights = {
                            keys[n]: theta0[n] * hard[n].to(theta0[n].dtype) for n in names
                        }
                        record["hard_mask_loss"] = float(
                            masked_loss(model, hard_weights, batch, strategy, modules, loss)
                        )
                history.append(record)
                if log is not None:
                    log(record)
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
        model.train(was_training)
    final = {n: v.detach() for n, v in logits.items()}
    return SearchResult(
        masks=global_topk(final, k, settings.min_layer_density),
        probabilities={n: torch.sigmoid(v) for n, v in final.items()},
        history=history,
    )
