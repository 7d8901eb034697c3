"""Callbacks of the training loop (:meth:`mriviewer.core.training.Trainer.run`).

One loop trains every run, in one process or under ``torchrun``; what a run does besides the
optimiser steps is a :class:`Callback`. Per step, in this order:

1. ``on_step(trainer, record)`` right after the optimiser step, on the rank that records the
   step (every step in one process); may prune, and may add fields to ``record`` (the
   ``log.jsonl`` line being built).
2. ``on_validation(trainer, metrics)`` after validation (on the validating rank), e.g. keep-best.
3. ``on_record(trainer, record)`` once the complete record has been written to ``log.jsonl``
   (on the logging rank), e.g. a caller's progress function.

``on_start(trainer)`` runs once the output folder is ready (after a resume restored its state)
and before the first step; ``on_end(trainer, result)`` after the final model is written.
Pruning (:class:`mriviewer.core.pruning.hook.TrainerPruning`) is such a callback; the loop's
built-in one is :class:`KeepBest`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mriviewer.core.checkpoints import save_model

# The trainer imports this module, so the hooks name it ``Trainer`` here without importing it.
Trainer = Any
TrainResult = Any


class Callback:
    """Base class: every hook is optional and does nothing here (see the module docstring)."""

    def on_start(self, trainer: Trainer) -> None:
        """Before the first step of this run (fresh or resumed)."""

    def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After optimiser step ``trainer.step``; may add fields to ``record``."""

    def on_validation(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After validating at ``trainer.step`` (``metrics``: psnr, ssim, nmse, zero_filled_*)."""

    def on_record(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After the step's complete record went to ``log.jsonl``."""

    def on_end(self, trainer: Trainer, result: TrainResult) -> None:
        """After the final model was written."""


class KeepBest(Callback):
    """Keep the best-on-validation (PSNR) weights in ``best.safetensors`` + ``best.json``;
    ``trainer.best`` holds their metrics and step (saved in the resume state)."""

    def on_validation(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if not trainer.best or metrics["psnr"] > trainer.best["psnr"]:
            trainer.best = metrics | {"step": trainer.step}
            save_model(
                trainer.output / "best.safetensors", trainer.model, trainer.card(trainer.best)
            )


class OnRecord(Callback):
    """A plain function ``fn(step, record)`` called with every complete log record."""

    def __init__(self, fn: Callable[[int, dict[str, Any]], None]) -> None:
        self.fn = fn

    def on_record(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.fn(trainer.step, record)


__all__ = ["Callback", "KeepBest", "OnRecord"]
