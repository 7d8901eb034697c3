"""Training strategies on one model class: ``e2e``, ``checkpoint`` and ``gleam``.

All strategy code lives here. The pieces a parallel / distributed GLEAM (P-GLEAM) builds on:

- :func:`module_ranges` ``(N, M) -> [(start, stop), ...]`` (refuses ``N % M != 0``);
- :func:`module_parameters` (the parameters of module ``m``);
- :func:`make_optimisers` (one Adam per module for GLEAM, one in total otherwise);
- :func:`gleam_module_step`: ONE module's forward + local loss + backward + optimiser step, given
  the (detached) image entering it; returns the detached output for the next module;
- :func:`run_modules`: inference with only the first ``k`` modules (early exit).

Shapes: images ``(B, H, W)`` complex; batches as in :class:`mriviewer.core.training.data.Batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.checkpoint import checkpoint

from mriviewer.core.errors import ConfigError
from mriviewer.core.models import Measurement, UnrolledNet

STRATEGIES = ("e2e", "checkpoint", "gleam", "pgleam")
# Greedy strategies (one optimiser per module); "pgleam" is GLEAM pipelined over torchrun
# processes (mriviewer.core.training.pgleam): in one process it is GLEAM.
GREEDY = ("gleam", "pgleam")
LOSSES = ("l1", "l2")


def image_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Complex l1 ``mean |pred - target|`` (default) or l2 ``mean |pred - target|^2``."""
    diff = pred - target
    if kind == "l1":
        return diff.abs().mean()
    if kind == "l2":
        return (diff.real**2 + diff.imag**2).mean()
    raise ConfigError(f"unknown loss {kind!r}; use one of {', '.join(LOSSES)}")


def check_strategy(model: UnrolledNet, strategy: str, modules: int | None = None) -> int:
    """Validate ``strategy`` for ``model``; returns the number of modules M (1 unless GLEAM).

    GLEAM needs ``N % M == 0`` and unshared weights (a shared denoiser would be trained by every
    module's loss, which is not greedy learning).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if strategy not in GREEDY:
        return 1
    m = model.num_unrolls if modules is None else int(modules)
    module_ranges(model.num_unrolls, m)
    if getattr(model, "shared", False):
        raise ConfigError(
            "GLEAM needs one set of weights per unroll (shared = false): with weights shared "
            "across unrolls every module would update the same parameters"
        )
    return m


def module_ranges(num_unrolls: int, modules: int) -> list[tuple[int, int]]:
    """Unroll ranges ``[(start, stop), ...]`` of M equal contiguous modules of N unrolls."""
    if int(modules) < 1:
        raise ConfigError(f"number of GLEAM modules must be >= 1, got {modules}")
    if num_unrolls % modules != 0:
        raise ConfigError(
            f"GLEAM needs the number of unrolls ({num_unrolls}) to be divisible by the number "
            f"of modules ({modules})"
        )
    size = num_unrolls // modules
    return [(m * size, (m + 1) * size) for m in range(modules)]


def module_parameters(model: UnrolledNet, start: int, stop: int) -> list[torch.nn.Parameter]:
    """The distinct parameters used by unrolls ``start .. stop - 1``."""
    seen: set[int] = set()
    params = []
    for k in range(start, stop):
        for p in model.unroll_parameters(k):
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


def make_optimisers(
    model: UnrolledNet, strategy: str, modules: int | None, lr: float
) -> list[torch.optim.Optimizer]:
    """One Adam for ``e2e``/``checkpoint``; one Adam per module for ``gleam``."""
    m = check_strategy(model, strategy, modules)
    if strategy not in GREEDY:
        return [torch.optim.Adam(model.parameters(), lr=lr)]
    return [
        torch.optim.Adam(module_parameters(model, start, stop), lr=lr)
        for start, stop in module_ranges(model.num_unrolls, m)
    ]


@dataclass
class StepResult:
    """Loss of one training step (for GLEAM: the last module's loss) and every module's loss."""

    loss: float
    module_losses: list[float] = field(default_factory=list)


def gleam_module_step(
    model: UnrolledNet,
    start: int,
    stop: int,
    x_in: torch.Tensor,
    meas: Measurement,
    target: torch.Tensor,
    optimiser: torch.optim.Optimizer,
    loss: str = "l1",
) -> tuple[torch.Tensor, float]:
    """ONE GLEAM module: unrolls ``start..stop-1`` from the detached ``x_in``, local loss against
    ``target``, backward, ``optimiser.step()``.

    Returns ``(detached output image, loss value)``. Nothing outside the module receives a
    gradient: the input is detached and only this module's optimiser steps. The module's
    gradients are released after its step (``set_to_none``), so a GLEAM step holds the gradients
    of one module at a time, not of all N unrolls.
    """
    optimiser.zero_grad(set_to_none=True)
    x = x_in.detach()
    for k in range(start, stop):
        x = model.unroll(k, x, meas)
    value = image_loss(x, target, loss)
    value.backward()
    optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    return x.detach(), float(value.detach())


def _forward_checkpointed(model: UnrolledNet, meas: Measurement) -> torch.Tensor:
    x = meas.aty
    for k in range(model.num_unrolls):
        x = checkpoint(model.unroll, k, x, meas, use_reentrant=False)
    return x


def train_step(
    model: UnrolledNet,
    batch,
    optimisers: list[torch.optim.Optimizer],
    strategy: str,
    loss: str = "l1",
) -> StepResult:
    """One optimisation step of ``strategy`` on a :class:`~mriviewer.core.training.data.Batch`.

    e2e: one loss on the final image. checkpoint: the same with every unroll recomputed in the
    backward pass (``torch.utils.checkpoint``, ``use_reentrant=False``). gleam: for each module
    in order, :func:`gleam_module_step` (its own optimiser, local loss, detached input); k-space,
    maps and mask stay resident across modules.
    """
    model.train()
    with torch.no_grad():
        meas = model.measurement(batch.kspace, batch.maps, batch.mask)
    if strategy in GREEDY:
        ranges = module_ranges(model.num_unrolls, len(optimisers))
        x = meas.aty
        losses = []
        for (start, stop), optimiser in zip(ranges, optimisers, strict=True):
            x, value = gleam_module_step(model, start, stop, x, meas, batch.target, optimiser, loss)
            losses.append(value)
        return StepResult(loss=losses[-1], module_losses=losses)
    if strategy not in ("e2e", "checkpoint"):
        raise ConfigError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    (optimiser,) = optimisers
    optimiser.zero_grad(set_to_none=True)
    if strategy == "checkpoint":
        out = _forward_checkpointed(model, meas)
    else:
        x = meas.aty
        for k in range(model.num_unrolls):
            x = model.unroll(k, x, meas)
        out = x
    value = image_loss(out, batch.target, loss)
    value.backward()
    optimiser.step()
    return StepResult(loss=float(value.detach()), module_losses=[float(value.detach())])


def run_modules(
    model: UnrolledNet,
    kspace: torch.Tensor,
    maps: torch.Tensor,
    mask: torch.Tensor,
    modules: int,
    k: int,
) -> torch.Tensor:
    """Image after the first ``k`` of ``modules`` GLEAM modules (early exit); ``k = 0`` is ``A^H y``."""
    ranges = module_ranges(model.num_unrolls, modules)
    if not 0 <= k <= modules:
        raise ConfigError(f"k must be in [0, {modules}], got {k}")
    stop = ranges[k - 1][1] if k > 0 else 0
    return model(kspace, maps, mask, stop=stop)
