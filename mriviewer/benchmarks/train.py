"""Memory and time of the training strategies (``mriviewer bench train``).

Per strategy: peak training memory and the median seconds per iteration after warm-up.

- CUDA: ``torch.cuda.max_memory_allocated`` after a reset per strategy (model, optimiser state,
  batch and every activation allocated by PyTorch on the GPU).
- CPU (default ``memory="tensors"``): peak bytes of live tensors, independent of other processes:
  parameters + optimiser state + batch held before the step, plus the peak of the tensors created
  during one training step (activations saved for backward, checkpoint recomputations,
  temporaries, gradients), tracked per storage by a ``TorchDispatchMode`` that sees every op's
  outputs and weak references that see them freed.
- CPU with ``memory="rss"``: the peak resident set size of a fresh Python subprocess that runs
  only that strategy (includes the interpreter and libraries, so differences are compressed).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

from mriviewer.core.memory import LiveTensorBytes, peak_memory_bytes, reset_peak_memory
from mriviewer.core.models import build_model
from mriviewer.core.physics.fft import fft2c
from mriviewer.core.physics.masks import MaskSpec, make_mask
from mriviewer.core.training.data import Batch
from mriviewer.core.training.strategies import check_strategy, make_optimisers, train_step

MEMORY_METHODS = {
    "cuda": "cuda.max_memory_allocated (reset per strategy)",
    "tensors": "CPU live tensor bytes: params + optimiser state + batch + peak of tensors "
    "created in one step (TorchDispatchMode storage tracking)",
    "rss": "CPU peak RSS of a fresh subprocess per strategy (includes interpreter and libraries)",
}


def _tensor_bytes(tensors) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def synthetic_batch(
    size: int, coils: int, batch_size: int = 1, seed: int = 0, frames: int = 0
) -> Batch:
    """A phantom batch: ellipse images, birdcage coil maps (normalised), 4x random 1-D mask.

    frames > 0: one cine series instead (:func:`synthetic_cine_batch`; batch_size must be 1)."""
    import sigpy.mri

    if frames:
        if int(batch_size) != 1:
            raise ValueError("a cine batch holds one series (batch_size 1)")
        return synthetic_cine_batch(size, coils, frames, seed)
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    images = []
    for _ in range(batch_size):
        a, b = rng.uniform(0.6, 0.9, 2)
        img = ((yy / a) ** 2 + (xx / b) ** 2 < 1).astype(np.float32)
        img += 0.5 * (((yy - 0.2) / 0.25) ** 2 + ((xx + 0.1) / 0.15) ** 2 < 1)
        images.append(img * np.exp(1j * 0.5 * yy))
    image = torch.from_numpy(np.stack(images).astype(np.complex64))
    maps = torch.from_numpy(sigpy.mri.birdcage_maps((coils, size, size)).astype(np.complex64))
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(0, keepdim=True))
    maps = maps[None].expand(batch_size, -1, -1, -1).contiguous()
    mask = torch.from_numpy(
        np.stack(
            [
                make_mask(MaskSpec("random", 4.0, 0.08, seed=seed + i), (size, size)).array
                for i in range(batch_size)
            ]
        )
    )
    kspace = mask[:, None] * fft2c(maps * image[:, None])
    return Batch(
        kspace=kspace,
        maps=maps,
        mask=mask,
        target=image,
        scale=torch.ones(batch_size),
        references=[np.abs(i) for i in images],
        sources=["synthetic"] * batch_size,
    )


def synthetic_cine_batch(
    size: int, coils: int, frames: int, seed: int = 0, acceleration: float = 8.0
) -> Batch:
    """One cine series as a batch with its frames on the batch axis: an ellipse phantom whose
    inner ellipse beats over the series, birdcage maps (normalised, the same for every frame),
    a random k-t mask at R ``acceleration`` (centre fraction 0.08, a new mask per frame).
    kspace/maps ``(T, C, H, W)``, mask/target ``(T, H, W)``."""
    import sigpy.mri

    from mriviewer.core.physics.kt_masks import make_kt_mask

    yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    images = []
    for t in range(frames):
        r = 1 + 0.15 * np.cos(2 * np.pi * t / frames)
        img = (((yy / 0.85) ** 2 + (xx / 0.7) ** 2) < 1).astype(np.float32)
        img += 0.5 * (((yy - 0.1) / (0.25 * r)) ** 2 + ((xx + 0.1) / (0.2 * r)) ** 2 < 1)
        images.append(img * np.exp(1j * 0.5 * yy))
    image = torch.from_numpy(np.stack(images).astype(np.complex64))
    maps = torch.from_numpy(sigpy.mri.birdcage_maps((coils, size, size)).astype(np.complex64))
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(0, keepdim=True))
    maps = maps[None].expand(frames, -1, -1, -1).contiguous()
    spec = MaskSpec("random", float(acceleration), 0.08, seed=seed)
    mask = torch.from_numpy(make_kt_mask(spec, frames, (size, size)))
    kspace = mask[:, None] * fft2c(maps * image[:, None])
    return Batch(
        kspace=kspace,
        maps=maps,
        mask=mask,
        target=image,
        scale=torch.ones(1),
        references=[np.abs(image.numpy())],
        sources=["synthetic cine"],
    )


class StrategyRun:
    """One strategy's model, optimisers and synthetic batch, ready to be timed and measured."""

    def __init__(
        self,
        model_config: dict[str, Any],
        strategy: str,
        modules: int | None = None,
        size: int = 160,
        coils: int = 8,
        batch_size: int = 1,
        device: str = "cpu",
        lr: float = 1e-4,
        seed: int = 0,
        batch: Batch | None = None,
        frames: int = 0,
    ) -> None:
        self.strategy = strategy
        self.device = device
        self.cuda = device.startswith("cuda")
        torch.manual_seed(seed)
        self.model = build_model(dict(model_config)).to(device)
        m = check_strategy(self.model, strategy, modules)
        self.optimisers = make_optimisers(self.model, strategy, m, lr)
        if batch is None:
            batch = synthetic_batch(size, coils, batch_size, seed, frames)
        self.batch = batch.to(device)

    def step(self) -> float:
        """One training iteration (all M modules for GLEAM); returns its seconds."""
        start = time.perf_counter()
        train_step(self.model, self.batch, self.optimisers, self.strategy)
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def tensor_bytes(self) -> int:
        """CPU peak live tensor bytes of one step (held tensors + peak created in the step)."""
        for opt in self.optimisers:
            opt.zero_grad(set_to_none=True)
        gc.collect()
        held = list(self.model.parameters()) + list(self.model.buffers())
        for opt in self.optimisers:
            for state in opt.state.values():
                held.extend(v for v in state.values() if isinstance(v, torch.Tensor))
        b = self.batch
        held += [b.kspace, b.maps, b.mask, b.target]
        meter = LiveTensorBytes()
        with meter:
            train_step(self.model, self.batch, self.optimisers, self.strategy)
        return _tensor_bytes(held) + meter.peak


def measure_strategy(
    model_config: dict[str, Any],
    strategy: str,
    modules: int | None = None,
    size: int = 160,
    coils: int = 8,
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 2,
    iterations: int = 5,
    lr: float = 1e-4,
    seed: int = 0,
    memory: str = "tensors",
    batch: Batch | None = None,
    frames: int = 0,
) -> dict[str, Any]:
    """``{"peak_memory_bytes", "seconds_per_iteration", "method"}`` of one strategy alone.

    memory: on CPU ``tensors`` (live tensor bytes) or ``none`` (time only; used by the RSS
    subprocess); ignored on CUDA, where the peak covers model, batch, warm-up and timed steps.
    batch: train on this batch (e.g. a real slice of a training config) instead of a synthetic
    ``size`` x ``size`` phantom with ``coils`` coils (``frames`` > 0: a cine series of that many
    frames, :func:`synthetic_cine_batch`).
    """
    cuda = device.startswith("cuda")
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        reset_peak_memory(device)
    run = StrategyRun(
        model_config, strategy, modules, size, coils, batch_size, device, lr, seed, batch, frames
    )
    for _ in range(warmup):
        run.step()
    times = [run.step() for _ in range(iterations)]
    if cuda:
        peak, method = peak_memory_bytes(device)[0], MEMORY_METHODS["cuda"]
    elif memory == "tensors":
        peak, method = run.tensor_bytes(), MEMORY_METHODS["tensors"]
    else:
        peak, method = 0, "none"
    return {
        "peak_memory_bytes": int(peak),
        "seconds_per_iteration": float(statistics.median(times)),
        "method": method,
    }


def _measure_round_robin(kwargs_list: list[dict[str, Any]], warmup: int, iterations: int):
    """CPU timing fair under a busy machine: strategies alternate step by step."""
    runs = [StrategyRun(**kw) for kw in kwargs_list]
    for _ in range(warmup):
        for run in runs:
            run.step()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(iterations):
        for run, t in zip(runs, times, strict=True):
            t.append(run.step())
    return [
        {
            "peak_memory_bytes": int(run.tensor_bytes()),
            "seconds_per_iteration": float(statistics.median(t)),
            "method": MEMORY_METHODS["tensors"] + "; timed round-robin across strategies",
        }
        for run, t in zip(runs, times, strict=True)
    ]


def _measure_rss_subprocess(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`measure_strategy` (time only) in a fresh interpreter; add its peak RSS."""
    code = (
        "import json, sys\n"
        "from mriviewer.benchmarks.train import measure_strategy\n"
        "from mriviewer.core.memory import peak_memory_bytes\n"
        "r = measure_strategy(**json.loads(sys.argv[1]))\n"
        "r['rss_bytes'] = peak_memory_bytes('cpu')[0]\n"
        "print(json.dumps(r))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps({**kwargs, "memory": "none"})],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())},
    )
    if proc.returncode != 0:
        from mriviewer.core.errors import MriViewerError

        raise MriViewerError(f"benchmark subprocess failed: {proc.stderr.strip()[-500:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "peak_memory_bytes": int(result["rss_bytes"]),
        "seconds_per_iteration": result["seconds_per_iteration"],
        "method": MEMORY_METHODS["rss"],
    }


def bench_settings(
    model_config: dict[str, Any],
    modules: int | None,
    size: int,
    coils: int,
    batch_size: int,
    device: str,
    warmup: int,
    iterations: int,
    frames: int = 0,
) -> dict[str, Any]:
    """The settings every training benchmark records (its JSON ``settings``, in this order;
    ``frames`` only for a cine benchmark)."""
    return ({"frames": frames} if frames else {}) | {
        "model": dict(model_config),
        "modules": modules,
        "size": size,
        "coils": coils,
        "batch_size": batch_size,
        "device": device,
        "warmup": warmup,
        "iterations": iterations,
    }


def bench_train(
    model_config: dict[str, Any],
    strategies: list[str],
    modules: int | None = None,
    size: int = 160,
    coils: int = 8,
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 2,
    iterations: int = 5,
    memory: str = "tensors",
    seed: int = 0,
    frames: int = 0,
) -> dict[str, Any]:
    """``{"strategies": {name: measure}, "settings": {...}}`` for each strategy in turn
    (``frames`` > 0: on one synthetic cine series of that many frames)."""
    settings = bench_settings(
        model_config, modules, size, coils, batch_size, device, warmup, iterations, frames
    ) | {
        "memory": "cuda" if device.startswith("cuda") else memory,
        "seed": seed,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    jobs = [
        dict(
            model_config=dict(model_config),
            strategy=strategy,
            modules=modules if strategy == "gleam" else None,
            size=size,
            coils=coils,
            batch_size=batch_size,
            device=device,
            seed=seed,
            frames=frames,
        )
        for strategy in strategies
    ]
    out: dict[str, Any] = {}
    if device.startswith("cuda"):
        for job in jobs:  # one at a time: the peak must see only this strategy
            out[job["strategy"]] = measure_strategy(**job, warmup=warmup, iterations=iterations)
    elif memory == "rss":
        for job in jobs:
            kw = {**job, "warmup": warmup, "iterations": iterations}
            out[job["strategy"]] = _measure_rss_subprocess(kw)
    else:
        results = _measure_round_robin(jobs, warmup, iterations)
        out = {job["strategy"]: r for job, r in zip(jobs, results, strict=True)}
    return {"strategies": out, "settings": settings}
