"""``mriviewer bench plan --memory-budget SIZE``: the deepest network each strategy trains within
a memory budget (probe steps, linear extrapolation in N; see :mod:`mriviewer.benchmarks.plan`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mriviewer.commands.bench_train import add_problem_arguments
from mriviewer.core.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "plan",
        help="largest number of unrolls (and GLEAM modules) that fits a memory budget",
        description="Measure a few probe training steps of the model for each strategy and "
        "unroll count, extrapolate peak memory and s/step linearly in N, and choose the "
        "largest N (GLEAM: and the smallest M whose module fits) within the budget.",
    )
    parser.add_argument(
        "--memory-budget", required=True, metavar="SIZE", help="e.g. 2GiB, 512MiB, 1.5G"
    )
    parser.add_argument(
        "--config",
        metavar="CONFIG.toml",
        help="training config: its model and the largest slice of its training data "
        "(default: --model/--features on a synthetic --size x --size phantom)",
    )
    parser.add_argument("--strategies", default="e2e,checkpoint,gleam")
    parser.add_argument(
        "--unrolls",
        default=",".join(str(n) for n in _default_unrolls()),
        metavar="N[,N...]",
        help="unroll counts to consider (the smallest 3 are measured, the rest extrapolated)",
    )
    parser.add_argument("--measure-all", action="store_true", help="measure every N (no fit)")
    add_problem_arguments(
        parser,
        "without --config: a synthetic cine series of --frames frames and a --denoiser "
        "spatio-temporal model",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: config's or 1")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: config's)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per probe")
    parser.add_argument("--iterations", type=int, default=1, help="timed steps per probe")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the plan as JSON")
    parser.set_defaults(func=run)


def _default_unrolls():
    from mriviewer.benchmarks.plan import DEFAULT_UNROLLS

    return DEFAULT_UNROLLS


def run(args: argparse.Namespace) -> int:
    import torch

    from mriviewer.benchmarks.plan import (
        format_plan,
        parse_size,
        parse_unrolls,
        plan_memory,
        refusal,
    )

    budget = parse_size(args.memory_budget)
    unrolls = parse_unrolls(args.unrolls)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    batch = None
    if args.config:
        from mriviewer.benchmarks.plan import probe_batch
        from mriviewer.core.device import resolve_device
        from mriviewer.core.training import load_config
        from mriviewer.core.training.trainer import make_dataset

        config = load_config(args.config)
        model = dict(config.model)
        device = args.device or resolve_device(config.device)
        data = make_dataset(config, train=True)  # cine files too (dynamic = true)
        batch = probe_batch(data, args.batch_size or config.batch_size, config.seed)
        if config.threads is not None and args.threads is None:
            torch.set_num_threads(int(config.threads))
    else:
        device = args.device or "cpu"
        model = {"name": args.model, "features": args.features, "shared": False}
        if args.model == "modl":
            model["cg_iters"] = args.cg_iters
        from mriviewer.commands.bench_train import dynamic_model

        if args.batch_size is None:
            args.batch_size = 1
        model.update(dynamic_model(args))
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    model["shared"] = False
    from mriviewer.benchmarks.plan import device_name, format_size

    desc = ", ".join(f"{k} {v}" for k, v in model.items() if k not in ("name", "num_unrolls"))
    print(
        f"bench plan: {model['name']} ({desc}), budget {format_size(budget)}, "
        f"device {device_name(str(device))}, unrolls {','.join(map(str, unrolls))}",
        flush=True,
    )
    plan = plan_memory(
        model,
        budget,
        strategies,
        unrolls,
        batch,
        size=args.size,
        coils=args.coils,
        batch_size=args.batch_size or 1,
        device=str(device),
        warmup=args.warmup,
        iterations=args.iterations,
        measure_all=args.measure_all,
        frames=args.frames if args.dynamic and not args.config else 0,
    )
    print(format_plan(plan))
    if args.json:
        from mriviewer.core.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(plan.to_dict(), indent=2) + "\n")
        print(f"wrote {args.json}")
    if plan.choice is None:
        raise ConfigError(refusal(plan))
    return 0
