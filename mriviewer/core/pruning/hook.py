"""Pruning inside a training run (``mriviewer train --prune it|wt|at``): a training callback.

:class:`TrainerPruning` is a :class:`mriviewer.core.training.callbacks.Callback`, created by the
trainer (for a config with a ``[prune]`` table) right after it builds the model and before the
optimisers: it puts all-ones prune masks on the prunable weights, so checkpoints (``last.pt``)
hold ``weight_orig`` + ``weight_mask`` from the start and resume restores the masks.

- ``on_start`` -> ``start(trainer)`` (fresh runs only): PUN-IT runs its mask search on the training data
  (records go to ``log.jsonl`` with ``phase = "pun-it search"``), applies the top-k mask to
  ``theta_0`` and rebuilds the optimisers; PUN-WT / PUN-AT check their schedule.
- ``on_step`` -> ``after_step(trainer)`` after every optimiser step: PUN-WT / PUN-AT prune by global magnitude
  when their schedule says so (AT with optional rewind to the initial weights, clearing the
  optimiser state); returns ``{"density": ...}`` (plus ``pruned_to`` on pruning steps) for the log.
"""

from __future__ import annotations

from typing import Any

import torch

from mriviewer.core.models import UnrolledNet, build_model
from mriviewer.core.pruning.magnitude import (
    at_round_densities,
    at_round_steps,
    magnitude_prune,
    rewind,
    wt_density,
    wt_should_prune,
)
from mriviewer.core.pruning.masks import (
    apply_masks,
    dense_masks,
    density_report,
    fan_in_rescale,
    select_prunable,
    set_info,
)
from mriviewer.core.pruning.pun_it import pun_it_search
from mriviewer.core.pruning.settings import PruneSettings
from mriviewer.core.training.callbacks import Callback


def initial_state(model_config: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """The weights the trainer starts from (``torch.manual_seed(seed)`` then ``build_model``),
    rebuilt without touching the global RNG (for ``rewind = init``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(dict(model_config))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class TrainerPruning(Callback):
    """PUN-IT / PUN-WT / PUN-AT as a callback of :class:`mriviewer.core.training.Trainer`."""

    def __init__(self, settings: PruneSettings | dict[str, Any], model: UnrolledNet) -> None:
        self.settings = PruneSettings.from_dict(settings)
        self.model = model
        self.names = select_prunable(model, self.settings.layers, self.settings.exempt)
        apply_masks(model, dense_masks(model, self.names))
        set_info(model, self.settings.method_name, self.settings.to_dict())
        self._at_steps: list[int] = []
        self._at_densities: list[float] = []
        self._initial: dict[str, torch.Tensor] | None = None

    def density(self) -> float:
        """Current kept fraction of the prunable weights."""
        return density_report(self.model, self.names)["density"]

    def _schedule(self, trainer: Any) -> None:
        if self.settings.method == "at" and not self._at_steps:
            self._at_steps = at_round_steps(trainer.total_steps, self.settings)
            self._at_densities = at_round_densities(self.settings.density, self.settings.rounds)
        if self.settings.rewind == "init" and self._initial is None:
            self._initial = initial_state(trainer.model.config(), trainer.config.seed)

    def start(self, trainer: Any) -> None:
        """Before the first step of a fresh run (see the module docstring)."""
        from mriviewer.core.physics.masks import stable_seed
        from mriviewer.core.training.data import collate
        from mriviewer.core.training.strategies import make_optimisers

        self._schedule(trainer)
        if self.settings.method != "it":
            return
        c = trainer.config

        def batch(step: int):
            indices = trainer.batch_indices(step)
            samples = [
                trainer.train_data.sample(i, stable_seed("pun-it search", c.seed, step, j))
                for j, i in enumerate(indices)
            ]
            return collate(samples).to(trainer.device)

        def log(record: dict[str, Any]) -> None:
            trainer._log({"step": 0, **record})

        result = pun_it_search(
            self.model,
            batch,
            self.settings,
            names=self.names,
            strategy="gleam" if c.strategy == "gleam" else "e2e",
            modules=trainer.modules,
            loss=c.loss,
            log=log,
            generator_seed=stable_seed("pun-it noise", c.seed),
        )
        apply_masks(self.model, result.masks)
        if self.settings.init_scale == "fan-in":
            scales = fan_in_rescale(self.model, list(result.masks)).values()
            live = sum(n for n, _, _ in scales)
            log(
                {
                    "phase": "pun-it init scale",
                    "mean_scale": sum(t for _, _, t in scales) / max(1, live),
                    "channels_kept": live,
                    "channels_empty": sum(d for _, d, _ in scales),
                }
            )
        trainer.optimisers = make_optimisers(self.model, c.strategy, trainer.modules, c.lr)
        report = density_report(self.model, self.names)
        log(
            {
                "phase": "pun-it mask",
                "density": report["density"],
                "kept": report["kept"],
                "prunable": report["total"],
            }
        )

    def after_step(self, trainer: Any) -> dict[str, Any]:
        """After optimiser step ``trainer.step``: prune if scheduled; log fields."""
        s = self.settings
        step = trainer.step
        out: dict[str, Any] = {}
        target = None
        if s.method == "wt" and wt_should_prune(step, trainer.total_steps, s):
            target = wt_density(step, trainer.total_steps, s)
        elif s.method == "at":
            self._schedule(trainer)
            if step in self._at_steps:
                target = self._at_densities[self._at_steps.index(step)]
        if target is not None and target < self.density():
            magnitude_prune(self.model, self.names, target, s.min_layer_density)
            out["pruned_to"] = target
            if s.method == "at" and s.rewind == "init":
                self._schedule(trainer)
                assert self._initial is not None
                rewind(self.model, self._initial)
                for optimiser in trainer.optimisers:
                    optimiser.state.clear()
                out["rewound"] = True
        out["density"] = self.density()
        return out

    # -- training callback -----------------------------------------------------------------
    def on_start(self, trainer: Any) -> None:
        if trainer.step == 0:
            self.start(trainer)  # PUN-IT mask search (logged), then fresh optimisers

    def on_step(self, trainer: Any, record: dict[str, Any]) -> None:
        record.update(self.after_step(trainer))  # PUN-WT / PUN-AT schedule

    def state_config(self) -> dict[str, Any]:
        """Settings a resumed run must share (added to the trainer's resume check)."""
        return self.settings.to_dict()
