"""PUN-AT on a trained model (``mriviewer prune MODEL``): global magnitude pruning in rounds,
each round followed by fine-tuning with the masks fixed.

Round ``n`` keeps ``D^(n/R)`` of the prunable weights (:func:`prune_after_training`); each
round's fine-tuning is a normal training run (:class:`mriviewer.core.training.Trainer` given the
pruned model; data, mask, loss, lr and strategy from the training config) of ``finetune_steps``
steps, written to ``OUT/roundN``; the result is ``OUT/model.safetensors`` + ``OUT/model.json``
whose card's ``extra.pun_at`` records the source, its density and every round.

PUN-AT inside one training run (``mriviewer train --prune at``) is the training callback
:class:`mriviewer.core.pruning.hook.TrainerPruning` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from mriviewer.core.checkpoints import ModelCard, resolve_model, save_model
from mriviewer.core.errors import ConfigError
from mriviewer.core.pruning.export import load_pruned
from mriviewer.core.pruning.hook import initial_state
from mriviewer.core.pruning.magnitude import prune_after_training
from mriviewer.core.pruning.masks import density_report, select_prunable, set_info
from mriviewer.core.pruning.settings import PruneSettings
from mriviewer.core.training.config import TrainConfig, load_config
from mriviewer.core.training.trainer import Trainer


@dataclass
class PunAtResult:
    """What :func:`prune_trained_model` wrote: the model path, its source and the round records."""

    path: Path
    source: Path
    settings: PruneSettings
    history: list[dict[str, Any]] = field(default_factory=list)
    card: ModelCard | None = None


def finetune_config(
    card: ModelCard,
    settings: PruneSettings,
    out: Path,
    round_number: int,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """The training settings of round ``round_number``'s fine-tuning.

    The architecture is the card's; steps ``settings.finetune_steps``; output ``OUT/roundN``;
    no progress bar; ``overrides`` (``train_dir``, ``val_dir``, ``device``; None = from the
    config) as :func:`mriviewer.core.training.load_config` takes them. The run's masks come from
    PUN-AT, so a ``[prune]`` table in the config is dropped.
    """
    values: dict[str, Any] = {
        f"model.{k}": v for k, v in card.architecture.items() if k != "name"
    } | {
        "model.name": card.architecture["name"],
        "steps": settings.finetune_steps,
        "output": str(out / f"round{round_number}"),
        "progress": False,
    }
    train_config = load_config(config, values | dict(overrides or {}))
    train_config.prune = None  # the masks come from PUN-AT, not from a [prune] table
    return train_config


def prune_trained_model(
    source: str | Path,
    settings: PruneSettings | dict[str, Any],
    out: str | Path,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> PunAtResult:
    """PUN-AT of the saved model ``source`` (path or bundled name) into the folder ``out``.

    settings: PUN-AT settings (density, rounds, finetune_steps, rewind, layers, exempt,
    min_layer_density). config / overrides: the fine-tuning's training settings (see
    :func:`finetune_config`); fine-tuning needs a config or a ``train_dir`` override.
    Refuses an ``out`` that already holds a pruned model.
    """
    settings = PruneSettings.from_dict(settings)
    overrides = dict(overrides or {})
    if settings.finetune_steps > 0 and config is None and overrides.get("train_dir") is None:
        raise ConfigError("fine-tuning needs training settings: give --config TRAIN.toml")
    weights = resolve_model(source)
    out = Path(out)
    if (out / "model.safetensors").exists():
        raise ConfigError("output folder already holds a pruned model; choose another --out", out)
    model, card = load_pruned(weights)
    names = select_prunable(model, settings.layers, settings.exempt)
    set_info(model, settings.method_name, settings.to_dict())
    before = density_report(model, names)["density"]

    initial = None
    if settings.rewind == "init":  # the trainer's initialisation: manual_seed(seed), build_model
        if "seed" in card.extra:
            seed = int(card.extra["seed"])
        elif config is not None:
            seed = finetune_config(card, settings, out, 0, config, overrides).seed
        else:
            seed = 0
        initial = initial_state(card.architecture, seed)
    last_validation: dict[str, Any] = {}

    def finetune(net: nn.Module, n: int) -> dict[str, Any]:
        if settings.finetune_steps == 0:
            return {}
        trainer = Trainer(finetune_config(card, settings, out, n, config, overrides), model=net)
        result = trainer.run()
        last_validation.clear()
        last_validation.update(result.validation)
        record = {"finetune_loss": result.last_loss, "output": str(result.output)}
        if result.validation:
            record["val_psnr"] = result.validation["psnr"]
            record["val_ssim"] = result.validation["ssim"]
        return record

    history = prune_after_training(model, names, settings, finetune, initial)
    final = ModelCard.from_dict(card.to_dict())
    final.steps = card.steps + settings.rounds * settings.finetune_steps
    final.validation = dict(last_validation) or card.validation
    final.created = ""
    final.extra = {
        **card.extra,
        "pun_at": {"source": str(weights), "source_density": before, "rounds": history},
    }
    final.extra.pop("pruning", None)
    path = save_model(out / "model.safetensors", model.cpu(), final)
    return PunAtResult(path=path, source=weights, settings=settings, history=history, card=final)


__all__ = ["PunAtResult", "finetune_config", "prune_trained_model"]
