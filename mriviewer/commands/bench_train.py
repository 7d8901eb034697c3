"""``mriviewer bench train``: peak training memory and time per iteration of each strategy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mriviewer.core.errors import ConfigError


def add_problem_arguments(parser: argparse.ArgumentParser, dynamic_help: str) -> None:
    """The synthetic model and problem of ``bench train`` and ``bench plan``: ``--model``,
    ``--features``, ``--cg-iters``, ``--size``, ``--coils``, ``--dynamic``, ``--frames``,
    ``--denoiser``."""
    parser.add_argument("--model", choices=["modl", "pgd"], default="modl")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--cg-iters", type=int, default=10, help="MoDL CG iterations")
    parser.add_argument("--size", type=int, default=160, help="synthetic image size (square)")
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--dynamic", action="store_true", help=dynamic_help)
    parser.add_argument("--frames", type=int, default=12, help="cine frames (with --dynamic)")
    parser.add_argument(
        "--denoiser",
        choices=["2d", "3d", "2+1d"],
        default=None,
        help="denoiser convolutions (default: 3d with --dynamic, else 2d)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="memory and time per iteration of e2e / checkpoint / GLEAM training",
        description="Train a synthetic batch with each strategy and print peak memory and "
        "median seconds per iteration after warm-up.",
    )
    parser.add_argument("--unrolls", type=int, default=8)
    add_problem_arguments(
        parser,
        "a 2-D + t problem: one synthetic cine series of --frames frames (k-t mask R 8), "
        "the model with a --denoiser spatio-temporal denoiser",
    )
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--strategies", default="e2e,checkpoint,gleam")
    parser.add_argument("--modules", type=int, default=None, help="GLEAM modules (default N)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations (median)")
    parser.add_argument(
        "--memory",
        choices=["tensors", "rss"],
        default="tensors",
        help="CPU memory measure: live tensor bytes (default) or peak RSS of a fresh subprocess",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    parser.add_argument(
        "--world-size",
        type=int,
        default=None,
        metavar="D",
        help="with --strategies gleam,pgleam: steps per second of GLEAM in one process vs "
        "P-GLEAM on D local processes (torchrun)",
    )
    parser.set_defaults(func=run)


def format_table(result: dict) -> str:
    """The printed table: one row per strategy, ratios against e2e when it was measured."""
    rows = result["strategies"]
    base = rows.get("e2e")
    lines = [
        f"{'strategy':<11} {'peak memory':>12} {'s/iter':>9} {'mem vs e2e':>11} {'time vs e2e':>12}"
    ]
    for name, r in rows.items():
        mem = r["peak_memory_bytes"] / 2**20
        ratio_m = f"{r['peak_memory_bytes'] / base['peak_memory_bytes']:.2f}x" if base else "-"
        ratio_t = (
            f"{r['seconds_per_iteration'] / base['seconds_per_iteration']:.2f}x" if base else "-"
        )
        lines.append(
            f"{name:<11} {mem:>9.1f} MiB {r['seconds_per_iteration']:>9.3f} {ratio_m:>11} {ratio_t:>12}"
        )
    methods = sorted({r["method"] for r in rows.values()})
    lines.append("memory: " + "; ".join(methods))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from mriviewer.benchmarks.train import bench_train
    from mriviewer.core.training.strategies import STRATEGIES

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ConfigError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {args.device!r} requested but CUDA is not available")
    model = {
        "name": args.model,
        "num_unrolls": args.unrolls,
        "features": args.features,
        "shared": False,
    }
    if args.model == "modl":
        model["cg_iters"] = args.cg_iters
    model.update(dynamic_model(args))
    modules = args.modules if args.modules is not None else args.unrolls
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if "pgleam" in strategies or args.world_size is not None:
        if args.dynamic:
            raise ConfigError(
                "--dynamic measures memory and time in one process: drop pgleam/--world-size "
                "(P-GLEAM throughput on cine is not implemented)"
            )
        return _throughput(args, strategies, model, modules)
    cine = f" frames {args.frames} denoiser {model['denoiser']}" if args.dynamic else ""
    print(
        f"bench train: {args.model} N={args.unrolls} F={args.features} size {args.size} "
        f"coils {args.coils}{cine} batch {args.batch_size} GLEAM M={modules} device {args.device}"
    )
    result = bench_train(
        model,
        strategies,
        modules=modules,
        **_run_settings(args),
        memory=args.memory,
        frames=args.frames if args.dynamic else 0,
    )
    return _report(format_table(result), result, args.json)


def dynamic_model(args: argparse.Namespace) -> dict:
    """``{"denoiser": ...}`` for the model from ``--dynamic``/``--denoiser`` (ConfigError for a
    spatio-temporal denoiser without ``--dynamic``, a batch or too few frames)."""
    denoiser = args.denoiser or ("3d" if args.dynamic else "2d")
    if not args.dynamic:
        if denoiser != "2d":
            raise ConfigError(f"--denoiser {denoiser} convolves over time: add --dynamic")
        return {}
    if args.batch_size != 1:
        raise ConfigError("--dynamic benchmarks one cine series: --batch-size 1")
    if args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    return {"denoiser": denoiser}


def _throughput(args: argparse.Namespace, strategies: list[str], model: dict, modules: int) -> int:
    """``--strategies gleam,pgleam --world-size D``: steps/s of GLEAM vs P-GLEAM on D processes."""
    from mriviewer.benchmarks.pgleam import bench_throughput, format_throughput
    from mriviewer.core.training.pgleam import rank_modules

    world = 2 if args.world_size is None else int(args.world_size)
    if world < 2:
        raise ConfigError(f"--world-size must be >= 2 to compare P-GLEAM with GLEAM, got {world}")
    other = [s for s in strategies if s not in ("gleam", "pgleam")]
    if other:
        raise ConfigError(
            f"--world-size measures throughput of gleam and pgleam only; drop {other} "
            "(memory of the other strategies: run bench train without --world-size)"
        )
    rank_modules(modules, world, 0)
    print(
        f"bench train throughput: {model['name']} N={model['num_unrolls']} "
        f"F={model['features']} size {args.size} coils {args.coils} batch {args.batch_size} "
        f"M={modules}, P-GLEAM on {world} processes, device {args.device}, "
        f"{args.iterations} timed steps after {args.warmup} warm-up",
        flush=True,
    )
    result = bench_throughput(
        model,
        strategies,
        world_size=world,
        modules=modules,
        **_run_settings(args),
    )
    return _report(format_throughput(result), result, args.json)


def _run_settings(args: argparse.Namespace) -> dict:
    """The benchmark keyword arguments both modes take from the options."""
    return {
        "size": args.size,
        "coils": args.coils,
        "batch_size": args.batch_size,
        "device": args.device,
        "warmup": args.warmup,
        "iterations": args.iterations,
    }


def _report(table: str, result: dict, json_path: str | None) -> int:
    """Print the table and, when asked, write the result as JSON (atomically)."""
    print(table)
    if json_path:
        from mriviewer.core.files import atomic_write_text

        atomic_write_text(Path(json_path), json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
