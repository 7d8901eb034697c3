"""Throughput of P-GLEAM vs GLEAM: ``mriviewer bench train --strategies gleam,pgleam --world-size D``.

Single-process GLEAM and the P-GLEAM pipeline (:class:`mriviewer.core.training.pgleam.
PipelineStage` on ``D`` local ``torchrun`` processes, started as a subprocess running this
module) train on the same synthetic batch; the result is steps per second after warm-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mriviewer.benchmarks.train import bench_settings, synthetic_batch
from mriviewer.core.errors import ConfigError, MriViewerError
from mriviewer.core.files import atomic_write_text
from mriviewer.core.models import build_model
from mriviewer.core.training.distributed import DEFAULT_TIMEOUT_S, init_distributed
from mriviewer.core.training.pgleam import PipelineStage, rank_modules
from mriviewer.core.training.strategies import check_strategy, make_optimisers, train_step


def _bench_setup(settings: dict[str, Any], device: str):
    torch.manual_seed(int(settings["seed"]))
    model = build_model(dict(settings["model"])).to(device)
    modules = check_strategy(model, "gleam", settings["modules"])
    optimisers = make_optimisers(model, "gleam", modules, float(settings["lr"]))
    batch = synthetic_batch(
        int(settings["size"]), int(settings["coils"]), int(settings["batch_size"]), 0
    ).to(device)
    return model, modules, optimisers, batch


def _timed_steps(
    step: Callable[[], Any], sync: Callable[[], None], settings: dict[str, Any]
) -> dict[str, Any]:
    """Run ``warmup`` untimed then ``iterations`` timed steps (``sync`` after each phase).

    Returns ``{"seconds", "steps_per_second", "threads"}`` of the timed phase.
    """
    for _ in range(int(settings["warmup"])):
        step()
    sync()
    started = time.perf_counter()
    for _ in range(int(settings["iterations"])):
        step()
    sync()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "steps_per_second": int(settings["iterations"]) / seconds,
        "threads": torch.get_num_threads(),
    }


def gleam_throughput(settings: dict[str, Any]) -> dict[str, Any]:
    """Steps per second of single-process GLEAM on the synthetic batch (after warm-up)."""
    device = settings["device"]
    model, _modules, optimisers, batch = _bench_setup(settings, device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    timed = _timed_steps(lambda: train_step(model, batch, optimisers, "gleam"), sync, settings)
    return {"processes": 1, **timed}


def _bench_worker(settings: dict[str, Any], out_path: str) -> None:
    """Runs in every torchrun process: pipelined P-GLEAM steps on the synthetic batch."""
    ctx = init_distributed(settings["device"], float(settings["timeout"]))
    model, modules, optimisers, batch = _bench_setup(settings, ctx.device)
    stage = PipelineStage(model, modules, optimisers, ctx)

    def drain() -> None:
        stage.wait_sends()
        if ctx.device.startswith("cuda"):
            torch.cuda.synchronize(ctx.device)
        dist.barrier()

    timed = _timed_steps(lambda: stage.step(batch), drain, settings)
    if ctx.is_main:
        result = {"processes": ctx.world_size, **timed, "backend": ctx.backend}
        atomic_write_text(Path(out_path), json.dumps(result) + "\n")
    dist.destroy_process_group()


def pgleam_throughput(settings: dict[str, Any], world_size: int) -> dict[str, Any]:
    """Steps per second of P-GLEAM on ``world_size`` local processes (a torchrun subprocess)."""
    rank_modules(int(settings["modules"]), world_size, 0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pgleam.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(world_size),
            "-m",
            "mriviewer.benchmarks.pgleam",
            json.dumps(settings),
            str(out),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip()[-800:]
            raise MriViewerError(f"P-GLEAM benchmark on {world_size} processes failed: {tail}")
        return json.loads(out.read_text(encoding="utf-8"))


def bench_throughput(
    model_config: dict[str, Any],
    strategies: list[str],
    world_size: int,
    modules: int,
    size: int = 160,
    coils: int = 8,
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 2,
    iterations: int = 10,
    seed: int = 0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """``{"strategies": {"gleam"|"pgleam": {...steps_per_second}}, "settings": {...}}``."""
    settings = bench_settings(
        model_config, modules, size, coils, batch_size, device, warmup, iterations
    ) | {
        "seed": seed,
        "lr": 1e-4,
        "timeout": timeout_s,
    }
    unknown = [s for s in strategies if s not in ("gleam", "pgleam")]
    if unknown:
        raise ConfigError(f"throughput is measured for gleam and pgleam, not {unknown}")
    out: dict[str, Any] = {}
    if "pgleam" in strategies:
        out["pgleam"] = pgleam_throughput(settings, world_size)
    if "gleam" in strategies:
        # On CPU, GLEAM gets as many threads as one P-GLEAM process (torchrun's
        # OMP_NUM_THREADS): the comparison is then one process vs D such processes.
        threads = torch.get_num_threads()
        if "pgleam" in out and not device.startswith("cuda"):
            torch.set_num_threads(int(out["pgleam"]["threads"]))
        try:
            out = {"gleam": gleam_throughput(settings), **out}
        finally:
            torch.set_num_threads(threads)
    return {"strategies": out, "settings": settings | {"world_size": world_size}}


def format_throughput(result: dict[str, Any]) -> str:
    """Printed table: processes, steps/s, speed-up over single-process GLEAM."""
    rows = result["strategies"]
    base = rows.get("gleam")
    lines = [f"{'strategy':<9} {'processes':>9} {'threads':>8} {'steps/s':>9} {'vs gleam':>9}"]
    for name, r in rows.items():
        ratio = f"{r['steps_per_second'] / base['steps_per_second']:.2f}x" if base else "-"
        lines.append(
            f"{name:<9} {r['processes']:>9} {r['threads']:>8} {r['steps_per_second']:>9.3f} "
            f"{ratio:>9}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # torchrun entry of the benchmark worker
    _bench_worker(json.loads(sys.argv[1]), sys.argv[2])
