"""``mriviewer prune MODEL --density D --rounds R --finetune-steps N --config TRAIN.toml --out DIR``:
PUN-AT, prune a trained model by global magnitude in rounds with fine-tuning between rounds.

Round ``n`` keeps ``D^(n/R)`` of the prunable weights; each round's fine-tuning is a normal
training run (data, mask, loss, lr and strategy from ``--config``) of ``N`` steps with the masks
fixed, written to ``DIR/roundN``; the result is ``DIR/model.safetensors`` + ``DIR/model.json``.
The work is :func:`mriviewer.core.pruning.pun_at.prune_trained_model`; this command parses and
prints.
"""

from __future__ import annotations

import argparse
import json


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
    from mriviewer.core.pruning.pun_at import prune_trained_model

    settings = {
        "method": "at",
        "density": args.density,
        "rounds": args.rounds,
        "finetune_steps": args.finetune_steps,
        "rewind": args.rewind,
        **({"layers": args.layers} if args.layers else {}),
        **({"exempt": args.exempt} if args.exempt else {}),
        "min_layer_density": args.min_layer_density,
    }
    overrides = {"train_dir": args.train_dir, "val_dir": args.val_dir, "device": args.device}
    result = prune_trained_model(args.model, settings, args.out, args.config, overrides)
    path, history, settings = result.path, result.history, result.settings
    if args.json:
        print(json.dumps({"model": str(path), "rounds": history}, indent=2, default=str))
        return 0
    print(
        f"PUN-AT {result.source} -> density {settings.density} in {settings.rounds} rounds "
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
