"""``mriviewer prune MODEL --density D --rounds R --finetune-steps N --config TRAIN.toml --out DIR``:
PUN-AT, prune a trained model by global magnitude in rounds with fine-tuning between rounds.

Round ``n`` keeps ``D^(n/R)`` of the prunable weights; each round's fine-tuning is a normal
training run (data, mask, loss, lr and strategy from ``--config``) of ``N`` steps with the masks
fixed, written to ``DIR/roundN``; the result is ``DIR/model.safetensors`` + ``DIR/model.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mriviewer.core.errors import ConfigError


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "prune",
        help="PUN-AT: prune a trained model by global magnitude in rounds, fine-tuning between",
        description="Prune a trained model (path or bundled name) to a density (kept fraction "
        "of the prunable conv weights) in rounds of global magnitude pruning, fine-tuning with "
        "the masks fixed after each round (training settings from --config).",
    )
    parser.add_argument("model", metavar="MODEL", help="saved model path or bundled name")
    parser.add_argument("--density", type=float, required=True, help="target kept fraction")
    parser.add_argument("--rounds", type=int, default=3, help="pruning rounds (default 3)")
    parser.add_argument(
        "--finetune-steps", type=int, default=0, help="fine-tuning steps after each round"
    )
    parser.add_argument(
        "--rewind",
        choices=["none", "init"],
        default="none",
        help="reset kept weights to their initial values before fine-tuning (default none)",
    )
    parser.add_argument(
        "--config", metavar="TRAIN.toml", help="training config for fine-tuning (data, lr, ...)"
    )
    parser.add_argument("--train", dest="train_dir", metavar="FOLDER", help="override train_dir")
    parser.add_argument("--val", dest="val_dir", metavar="FOLDER", help="override val_dir")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1 (default from the config)")
    parser.add_argument("--layers", type=_names, metavar="PATTERNS", help="conv weights to prune")
    parser.add_argument(
        "--exempt", type=_names, metavar="first,last|PATTERNS", help="conv weights left dense"
    )
    parser.add_argument(
        "--min-layer-density",
        type=float,
        default=0.0,
        help="every pruned layer keeps at least this fraction (default 0: plain global)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--json", action="store_true", help="print the round records as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from mriviewer.core.checkpoints import ModelCard, resolve_model, save_model
    from mriviewer.core.pruning import (
        PruneSettings,
        density_report,
        initial_state,
        load_pruned,
        prune_after_training,
        select_prunable,
    )
    from mriviewer.core.pruning.masks import set_info
    from mriviewer.core.training import Trainer, load_config, make_optimisers
    from mriviewer.core.training.strategies import check_strategy

    settings = PruneSettings.from_dict(
        {
            "method": "at",
            "density": args.density,
            "rounds": args.rounds,
            "finetune_steps": args.finetune_steps,
            "rewind": args.rewind,
            **({"layers": args.layers} if args.layers else {}),
            **({"exempt": args.exempt} if args.exempt else {}),
            "min_layer_density": args.min_layer_density,
        }
    )
    if settings.finetune_steps > 0 and args.config is None and args.train_dir is None:
        raise ConfigError("fine-tuning needs training settings: give --config TRAIN.toml")
    weights = resolve_model(args.model)
    out = Path(args.out)
    if (out / "model.safetensors").exists():
        raise ConfigError("output folder already holds a pruned model; choose another --out", out)
    model, card = load_pruned(weights)
    names = select_prunable(model, settings.layers, settings.exempt)
    set_info(model, settings.method_name, settings.to_dict())
    before = density_report(model, names)["density"]

    def finetune_config(n: int):
        overrides: dict[str, Any] = {
            f"model.{k}": v for k, v in card.architecture.items() if k != "name"
        } | {
            "model.name": card.architecture["name"],
            "steps": settings.finetune_steps,
            "output": str(out / f"round{n}"),
            "train_dir": args.train_dir,
            "val_dir": args.val_dir,
            "device": args.device,
            "progress": False,
        }
        config = load_config(args.config, overrides)
        config.prune = None  # the masks come from this command, not from a [prune] table
        return config

    initial = None
    if settings.rewind == "init":  # the trainer's initialisation: manual_seed(seed), build_model
        if "seed" in card.extra:
            seed = int(card.extra["seed"])
        elif args.config is not None:
            seed = finetune_config(0).seed
        else:
            seed = 0
        initial = initial_state(card.architecture, seed)
    last_validation: dict[str, Any] = {}

    def finetune(net: torch.nn.Module, n: int) -> dict[str, Any]:
        if settings.finetune_steps == 0:
            return {}
        config = finetune_config(n)
        trainer = Trainer(config)
        trainer.model = net.to(trainer.device)
        trainer.modules = check_strategy(net, config.strategy, config.modules)
        trainer.optimisers = make_optimisers(net, config.strategy, trainer.modules, config.lr)
        result = trainer.run()
        last_validation.clear()
        last_validation.update(result.validation)
        record = {"finetune_loss": result.last_loss, "output": str(result.output)}
        if result.validation:
            record["val_psnr"] = result.validation["psnr"]
            record["val_ssim"] = result.validation["ssim"]
        return record

    history = prune_after_training(model, names, settings, finetune, initial)
    source = card.to_dict()
    final = ModelCard.from_dict(source)
    final.steps = card.steps + settings.rounds * settings.finetune_steps
    final.validation = dict(last_validation) or card.validation
    final.created = ""
    final.extra = {
        **card.extra,
        "pun_at": {"source": str(weights), "source_density": before, "rounds": history},
    }
    final.extra.pop("pruning", None)
    path = save_model(out / "model.safetensors", model.cpu(), final)
    if args.json:
        print(json.dumps({"model": str(path), "rounds": history}, indent=2, default=str))
        return 0
    print(
        f"PUN-AT {weights} -> density {settings.density} in {settings.rounds} rounds "
        f"({settings.finetune_steps} fine-tuning steps each, rewind {settings.rewind})"
    )
    print(f"{'round':>5}  {'target':>8}  {'density':>8}  {'ft loss':>8}  {'val PSNR':>8}")
    for r in history:
        loss = f"{r['finetune_loss']:.4g}" if r.get("finetune_loss") is not None else "-"
        val = f"{r['val_psnr']:.2f}" if "val_psnr" in r else "-"
        print(
            f"{r['round']:>5}  {r['target_density']:>8.4f}  {r['density']:>8.4f}  {loss:>8}  {val:>8}"
        )
    print(f"pruned model: {path}")
    return 0
