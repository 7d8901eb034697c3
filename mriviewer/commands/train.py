"""``mriviewer train --config FILE.toml [flags]``: train an unrolled model (e2e, checkpoint, GLEAM)."""

from __future__ import annotations

import argparse
import sys


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 4,8, got {text!r}") from exc


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train an unrolled model (MoDL / PGD) end-to-end, checkpointed or greedily (GLEAM)",
        description="Train from a TOML config; flags override its settings.",
    )
    parser.add_argument("--config", metavar="FILE.toml", help="training configuration (TOML)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt")
    g = parser.add_argument_group("overrides")
    g.add_argument("--model", choices=["modl", "pgd"], help="architecture")
    g.add_argument("--unrolls", type=int, help="number of unrolls N")
    g.add_argument("--features", type=int, help="denoiser features")
    g.add_argument(
        "--shared",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="share weights across unrolls",
    )
    g.add_argument(
        "--strategy",
        choices=["e2e", "checkpoint", "gleam", "pgleam"],
        help="pgleam: GLEAM pipelined over torchrun processes; under torchrun the others "
        "train data-parallel",
    )
    g.add_argument(
        "--dist-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="under torchrun: a rank that fails or does not answer within this ends the job",
    )
    g.add_argument("--modules", type=int, help="GLEAM modules M (N %% M == 0)")
    g.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="choose N (and GLEAM's M) as the largest that fits SIZE (e.g. 2GiB, 512MiB, 1.5G), "
        "from probe steps of the config's strategy on its device and data (see bench plan)",
    )
    g.add_argument("--train", dest="train_dir", metavar="FOLDER", help="training data folder")
    g.add_argument("--val", dest="val_dir", metavar="FOLDER", help="validation data folder")
    g.add_argument("--mask", help="mask kind: random, equispaced, poisson, gaussian")
    g.add_argument("--center-fraction", type=float, help="centre fraction of 1-D masks")
    g.add_argument("--accelerations", type=_floats, metavar="R[,R...]", help="e.g. 4 or 4,8")
    g.add_argument(
        "--center-fractions",
        type=_floats,
        metavar="CF[,CF...]",
        help="one 1-D centre fraction per acceleration, e.g. 0.08,0.04",
    )
    g.add_argument(
        "--crop-readout",
        type=int,
        metavar="ROWS",
        help="train on random crops of this many readout rows (1-D masks; exact k-space by FFT "
        "along the readout); 0 = full slices. Validation always uses full slices",
    )
    g.add_argument(
        "--virtual-coils",
        type=int,
        metavar="V",
        help="compress slices with more coils to V virtual coils (SVD over coils); 0 = off",
    )
    g.add_argument(
        "--dynamic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="cine data (simulate --dynamic files): k-t masks, one series per step",
    )
    g.add_argument(
        "--denoiser",
        choices=["2d", "3d", "2+1d"],
        help="denoiser convolutions: 2d, or over (t, y, x) for cine (3d, 2+1d)",
    )
    g.add_argument("--steps", type=int)
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument(
        "--lr-schedule",
        choices=["constant", "cosine"],
        help="cosine: half a cosine from --lr to --lr-final over the run's steps",
    )
    g.add_argument("--lr-final", type=float, help="cosine schedule: the last step's lr")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--loss", choices=["l1", "l2"])
    g.add_argument("--device", help="auto, cpu, cuda, cuda:1")
    g.add_argument("--seed", type=int)
    g.add_argument("--output", metavar="FOLDER", help="output folder")
    g.add_argument("--val-every", type=int, help="validate every this many steps")
    g.add_argument("--checkpoint-every", type=int, help="write last.pt every this many steps")
    g.add_argument("--coil-method", choices=["espirit", "jsense", "lowres"])
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: the free cores, re-checked every 2 s during training)",
    )
    add_prune_arguments(parser)
    parser.set_defaults(func=run)


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


PRUNE_FLAGS = {  # flag dest -> [prune] setting (mriviewer.core.pruning.PruneSettings)
    "prune": "method",
    "density": "density",
    "prune_layers": "layers",
    "prune_exempt": "exempt",
    "prune_min_layer_density": "min_layer_density",
    "prune_temperature": "temperature",
    "prune_temperature_final": "temperature_final",
    "prune_beta": "beta",
    "prune_search_steps": "search_steps",
    "prune_search_lr": "search_lr",
    "prune_straight_through": "straight_through",
    "prune_init_scale": "init_scale",
    "prune_schedule": "schedule",
    "prune_every": "every",
    "prune_rounds": "rounds",
    "prune_finetune_steps": "finetune_steps",
    "prune_rewind": "rewind",
}


def add_prune_arguments(parser: argparse.ArgumentParser) -> None:
    """The pruning flags (PUN-IT / PUN-WT / PUN-AT); density is the kept fraction."""
    g = parser.add_argument_group("pruning (density = kept fraction of the prunable weights)")
    g.add_argument(
        "--prune",
        choices=["it", "wt", "at"],
        help="prune at initialisation (learned mask), during training, or after training",
    )
    g.add_argument("--density", type=float, help="target kept fraction, e.g. 0.03")
    g.add_argument(
        "--prune-layers",
        type=_names,
        metavar="PATTERNS",
        help="conv weights to prune (default all)",
    )
    g.add_argument(
        "--prune-exempt",
        type=_names,
        metavar="first,last|PATTERNS",
        help="leave these dense: first, last (each denoiser's 2->F / F->2 conv) or name patterns",
    )
    g.add_argument(
        "--prune-min-layer-density",
        type=float,
        help="every pruned layer keeps at least this fraction (guards against layer collapse)",
    )
    g.add_argument("--prune-temperature", type=float, help="PUN-IT Gumbel-softmax temperature")
    g.add_argument(
        "--prune-temperature-final", type=float, help="PUN-IT: anneal the temperature to this"
    )
    g.add_argument("--prune-beta", type=float, help="PUN-IT weight of KL(Ber(p) || Ber(density))")
    g.add_argument("--prune-search-steps", type=int, help="PUN-IT mask-search steps")
    g.add_argument("--prune-search-lr", type=float, help="PUN-IT learning rate of the logits")
    g.add_argument(
        "--prune-straight-through",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="PUN-IT: hard 0/1 mask forward, relaxed gradient",
    )
    g.add_argument(
        "--prune-init-scale",
        choices=["none", "fan-in"],
        help="PUN-IT: train from the kept initial weights as they are (none, the default) or "
        "scaled per output channel by sqrt(fan-in / kept fan-in) (fan-in; Evci et al. 2022)",
    )
    g.add_argument("--prune-schedule", choices=["cubic", "linear"], help="PUN-WT density schedule")
    g.add_argument("--prune-every", type=int, help="PUN-WT: prune every this many steps")
    g.add_argument("--prune-rounds", type=int, help="PUN-AT pruning rounds")
    g.add_argument("--prune-finetune-steps", type=int, help="PUN-AT fine-tuning steps per round")
    g.add_argument("--prune-rewind", choices=["none", "init"], help="PUN-AT weight rewinding")


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Map the command-line flags onto :func:`load_config` overrides (None = not given)."""
    return {
        "model.name": args.model,
        "model.num_unrolls": args.unrolls,
        "model.features": args.features,
        "model.shared": args.shared,
        "strategy": args.strategy,
        "modules": args.modules,
        "train_dir": args.train_dir,
        "val_dir": args.val_dir,
        "mask.kind": args.mask,
        "mask.center_fraction": args.center_fraction,
        "accelerations": args.accelerations,
        "center_fractions": args.center_fractions,
        "crop_readout": args.crop_readout,
        "virtual_coils": args.virtual_coils,
        "dynamic": args.dynamic,
        "model.denoiser": args.denoiser,
        "steps": args.steps,
        "epochs": args.epochs,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "lr_final": args.lr_final,
        "batch_size": args.batch_size,
        "loss": args.loss,
        "device": args.device,
        "seed": args.seed,
        "output": args.output,
        "val_every": args.val_every,
        "checkpoint_every": args.checkpoint_every,
        "coil_method": args.coil_method,
        "progress": False if args.no_progress else None,
        "threads": args.threads,
    } | {f"prune.{key}": getattr(args, dest, None) for dest, key in PRUNE_FLAGS.items()}


def run(args: argparse.Namespace) -> int:
    from mriviewer.core.training import Trainer, load_config

    budget = None
    if args.memory_budget is not None:
        from mriviewer.benchmarks.plan import parse_size
        from mriviewer.core.errors import ConfigError

        budget = parse_size(args.memory_budget)
        given = [
            flag for flag, v in (("--unrolls", args.unrolls), ("--modules", args.modules)) if v
        ]
        if given:
            raise ConfigError(
                f"--memory-budget chooses the unrolls and modules: drop {' and '.join(given)}"
            )
        if args.resume:
            raise ConfigError(
                "--memory-budget plans a new run: to resume, drop it (the run's config.json "
                "records the chosen unrolls and modules; pass them with --unrolls/--modules)"
            )
    config = load_config(args.config, overrides_from_args(args))
    from mriviewer.core.training.launch import launched_with_torchrun, run_distributed

    if budget is not None and launched_with_torchrun():
        from mriviewer.core.errors import ConfigError

        raise ConfigError("--memory-budget plans training in one process; not under torchrun")
    if launched_with_torchrun():
        return run_distributed(config, args.resume, args.dist_timeout)
    if config.strategy == "pgleam":
        from mriviewer.core.errors import ConfigError

        raise ConfigError(
            "strategy pgleam runs over several processes: launch it with torchrun, e.g. "
            "`torchrun --nproc-per-node 2 -m mriviewer train --strategy pgleam ...` "
            "(in one process use --strategy gleam)"
        )
    memory_plan = None
    if budget is not None:
        from mriviewer.benchmarks.plan import choice_line, plan_for_config

        config, plan = plan_for_config(config, budget)
        print(choice_line(plan).replace("choice:", "memory budget: chose", 1), flush=True)
        memory_plan = plan.record()
    # without --threads the run follows the free cores (a fixed count keeps it bit-for-bit
    # repeatable, --resume included)
    trainer = Trainer(config, resume=args.resume, memory_plan=memory_plan, follow_load=True)
    m = config.model
    print(
        f"training {m['name']} N={trainer.model.num_unrolls} "
        f"({trainer.model.parameter_count()} parameters) with {config.strategy}"
        + (f" M={trainer.modules}" if config.strategy == "gleam" else "")
        + f" on {len(trainer.train_data)} {'cine series' if config.dynamic else 'slices'}, "
        f"{trainer.total_steps} steps, "
        f"device {trainer.device}, loss {config.loss}"
        + (f", {m.get('denoiser', '2d')} denoiser" if config.dynamic else "")
    )
    if config.dynamic and m.get("denoiser", "2d") == "2d":
        print(
            "warning: a 2d denoiser on cine series denoises each frame on its own; "
            "--denoiser 3d or 2+1d convolves over time too",
            file=sys.stderr,
        )
    for data in (trainer.train_data, trainer.val_data):
        if getattr(data, "skipped", 0):
            print(f"note: {data.folder}: {data.skipped} non-cine file(s) left out", file=sys.stderr)
    result = trainer.run()
    if result.last_loss is None:
        print(f"nothing to do: the run already has {result.steps} steps")
    else:
        print(f"done: {result.steps} steps, last loss {result.last_loss:.4g}")
    if result.validation:
        v = result.validation
        print(
            f"validation: PSNR {v['psnr']:.2f} dB (zero-filled {v['zero_filled_psnr']:.2f} dB), "
            f"SSIM {v['ssim']:.4f}"
        )
    if result.best:
        print(
            f"best: step {result.best['step']}, PSNR {result.best['psnr']:.2f} dB -> "
            f"{result.output / 'best.safetensors'}"
        )
    if trainer.pruning is not None:
        print(
            f"pruning: {trainer.pruning.settings.method_name}, density {trainer.pruning.density():.4f} "
            f"(target {trainer.pruning.settings.density}) of {len(trainer.pruning.names)} conv weights"
        )
    print(f"final model: {result.output / 'model.safetensors'}; log: {result.output / 'log.jsonl'}")
    return 0
