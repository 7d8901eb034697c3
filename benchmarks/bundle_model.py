"""Copy a training run's best model into the bundled zoo (``resources/models/NAME.*``).

The card gains what a reader of the zoo needs to reproduce and judge it: the config it was
trained from (``extra.config``), the training time summed from the run's ``log.jsonl``
(``extra.training_seconds``; validation excluded), the run's length and which checkpoint was
taken (``extra.run_steps``, ``extra.selected``: best validates every ``val_every`` steps), and
the device it ran on
(``extra.training_device``, with an optional ``--note``). Writes are atomic.

Run::

    python benchmarks/bundle_model.py runs/dense dense --config resources/training/dense.toml \
        --device "cpu (1 thread, shared 2-core machine)"
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mriviewer.core.checkpoints import model_paths, read_card
from mriviewer.core.files import atomic_write_path, atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def training_seconds(run: Path) -> tuple[float, int]:
    """Sum of the per-step ``seconds`` in ``run/log.jsonl`` (validation time is not in them)
    and the number of steps the run made."""
    total, steps = 0.0, 0
    for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        total += float(record.get("seconds", 0.0))
        steps = max(steps, int(record.get("step", 0)))
    return total, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="training output folder (best.safetensors)")
    parser.add_argument("name", help="zoo name, e.g. dense")
    parser.add_argument("--config", required=True, help="the TOML it was trained from")
    parser.add_argument("--device", default="cpu (1 thread, shared 2-core machine)")
    parser.add_argument("--note", default=None, help="training_note on the card")
    parser.add_argument("--which", default="best", choices=("best", "model"))
    args = parser.parse_args()

    weights, _ = model_paths(args.run / f"{args.which}.safetensors")
    card = read_card(weights).to_dict()
    config = Path(args.config).resolve().relative_to(REPO).as_posix()
    seconds, run_steps = training_seconds(args.run)
    card["extra"] = {
        **card.get("extra", {}),
        "config": config,
        "training_seconds": round(seconds, 1),
        "run_steps": run_steps,
        "selected": (
            f"the {args.which} checkpoint: step {card['steps']} of the run's {run_steps} "
            "(training_seconds is the whole run's)"
        ),
        "training_device": args.device,
        **({"training_note": args.note} if args.note else {}),
    }
    zoo = REPO / "resources" / "models"
    with atomic_write_path(zoo / f"{args.name}.safetensors") as tmp:
        shutil.copyfile(weights, tmp)
    atomic_write_text(zoo / f"{args.name}.json", json.dumps(card, indent=2) + "\n")
    read_card(zoo / f"{args.name}.safetensors")  # the bundled card reads back
    print(f"{args.name}: {card['steps']} steps, validation {card['validation']}")


if __name__ == "__main__":
    main()
