"""``mriviewer models``: list the bundled trained models (the model zoo); the DATA column says
what each reconstructs: ``2d`` slices or cine series (``cine:3d``, refused on 2-D slices)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list bundled trained models")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=run)


def _fmt_validation(validation: dict) -> str:
    parts = []
    for key in ("psnr", "ssim"):
        if isinstance(validation.get(key), int | float):
            parts.append(f"{key.upper()} {validation[key]:.4g}")
    return ", ".join(parts) or "-"


def _fmt_data(card: dict) -> str:
    """What the model reconstructs: ``2d`` slices or ``cine:3d`` / ``cine:2+1d`` series."""
    denoiser = card.get("denoiser") or "2d"
    return f"cine:{denoiser}" if card.get("dynamic") else denoiser


def run(args: argparse.Namespace) -> int:
    from mriviewer.core.checkpoints import list_models, zoo_dir

    models = list_models()
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print(f"no bundled models in {zoo_dir()}")
        return 0
    header = (
        f"{'NAME':<16} {'ARCH':<6} {'DATA':<9} {'N':>3} {'F':>3} {'STRATEGY':<10} {'ACCEL':<10} "
        f"{'PARAMS':>9}  VALIDATION"
    )
    print(header)
    for entry in models:
        if "error" in entry:
            print(f"{entry['name']:<16} unreadable: {entry['error']}")
            continue
        card = entry["card"]
        accel = ",".join(f"{a:g}" for a in card.get("accelerations") or []) or "-"
        strategy = card.get("strategy") or "-"
        if strategy in ("gleam", "pgleam") and card.get("modules"):
            strategy = f"{strategy}/{card['modules']}"
        print(
            f"{entry['name']:<16} {card.get('architecture') or '-':<6} {_fmt_data(card):<9} "
            f"{card.get('unrolls') or 0:>3} {card.get('features') or '-':>3} "
            f"{strategy:<10} {accel:<10} {card.get('parameters') or 0:>9}  "
            f"{_fmt_validation(card.get('validation') or {})}"
        )
    print(
        "N unrolls, F features. VALIDATION: each model's own validation split, mean over its "
        "ACCEL, so models with other ACCEL or data do not compare by it: use mriviewer eval"
    )
    return 0
