"""Training under ``torchrun``: process-group set-up, data-parallel training and shared helpers.

Launch (one process per device; ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)::

    torchrun --nproc-per-node 2 -m mriviewer train --config train.toml --strategy gleam
    torchrun --nproc-per-node 2 -m mriviewer train --config train.toml --strategy pgleam

Backend ``nccl`` when training on CUDA (each process on ``cuda:LOCAL_RANK``), ``gloo`` on CPU.

Data parallel (``e2e``, ``checkpoint``, ``gleam``): every rank holds the whole model; each global
batch (the same batch a single process would train on, same mask seeds) is split over the ranks
like ``DistributedSampler`` (rank ``r`` takes positions ``r, r + D, ...``; a rank left without a
sample repeats one with weight 0). e2e/checkpoint wrap the unrolled forward pass in
``DistributedDataParallel``; GLEAM all-reduces each module's gradients just before that module's
optimiser step. Gradients are weighted by each rank's share of the global batch, so the update
equals the single-process update on the whole batch.

P-GLEAM (``pgleam``, pipelined greedy training across ranks) lives in
:mod:`mriviewer.core.training.pgleam` and builds on :class:`DistributedTrainer`;
:mod:`mriviewer.core.training.launch` picks between them for ``mriviewer train`` under torchrun.

The loop is :meth:`mriviewer.core.training.Trainer.run`, the same as in one process; this
module supplies its hooks: which rank records, validates and writes, the data-parallel step,
the failure injection and the errors naming the rank.

Failures: every collective / point-to-point wait is bounded by ``dist_timeout`` seconds; an
error on any rank is reported as a :class:`DistributedError` naming the rank and step and how to
resume, and ``torchrun`` then stops the other ranks.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint

from mriviewer.core.errors import ConfigError, MriViewerError
from mriviewer.core.models import UnrolledNet
from mriviewer.core.physics.masks import stable_seed
from mriviewer.core.training.config import TrainConfig
from mriviewer.core.training.data import Batch, collate
from mriviewer.core.training.strategies import (
    StepResult,
    gleam_module_step,
    image_loss,
    module_ranges,
)
from mriviewer.core.training.trainer import Trainer, step_record

DEFAULT_TIMEOUT_S = 300.0
TEST_FAIL_ENV = "MRIVIEWER_TEST_FAIL"  # test-only hook: "RANK:STEP" raises, "RANK:STEP:hang" hangs


class DistributedError(MriViewerError):
    """A distributed run failed on this rank, or lost contact with another rank."""


def launched_with_torchrun(environ: dict[str, str] | None = None) -> bool:
    """True when ``torchrun`` (or another launcher setting RANK and WORLD_SIZE) started us."""
    env = os.environ if environ is None else environ
    return "RANK" in env and "WORLD_SIZE" in env


@dataclass
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size``, its device and backend."""

    rank: int
    world_size: int
    local_rank: int
    device: str
    backend: str
    timeout_s: float

    @property
    def timeout(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.timeout_s)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_last(self) -> bool:
        return self.rank == self.world_size - 1


def init_distributed(device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext:
    """Join the ``torchrun`` job: ``nccl`` on CUDA (device ``cuda:LOCAL_RANK``), else ``gloo``.

    device: the run's device setting (``auto``, ``cpu``, ``cuda``; an explicit ``cuda:K`` is
    replaced by this rank's GPU). timeout_s: bound on every collective / send / receive.
    """
    if not launched_with_torchrun():
        raise ConfigError(
            "not started by torchrun (RANK / WORLD_SIZE unset); launch with e.g. "
            "`torchrun --nproc-per-node 2 -m mriviewer train ...`"
        )
    if not timeout_s > 0:
        raise ConfigError(f"--dist-timeout must be > 0 seconds, got {timeout_s}")
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    want_cuda = device.startswith("cuda") or (device in ("auto", "") and torch.cuda.is_available())
    if want_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "use --nproc-per-node <= the number of GPUs"
            )
        torch.cuda.set_device(local_rank)
        resolved, backend = f"cuda:{local_rank}", "nccl"
    else:
        resolved, backend = "cpu", "gloo"
    ctx = DistContext(rank, world, local_rank, resolved, backend, float(timeout_s))
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend, timeout=ctx.timeout)
        except Exception as exc:  # noqa: BLE001 - rendezvous failures become one clear line
            raise DistributedError(
                f"rank {rank} of {world}: cannot join the process group ({backend}) within "
                f"{timeout_s:g} s: {_first_line(exc)}"
            ) from exc
    return ctx


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def injected_failure_hook(rank: int, step: int) -> None:
    """Test-only: ``MRIVIEWER_TEST_FAIL="RANK:STEP"`` raises on that rank before that step
    (1-based); ``"RANK:STEP:hang"`` blocks there instead, to exercise the timeout."""
    spec = os.environ.get(TEST_FAIL_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if int(parts[0]) != rank or int(parts[1]) != step:
        return
    if len(parts) > 2 and parts[2] == "hang":
        time.sleep(10**6)
    raise RuntimeError(f"injected failure ({TEST_FAIL_ENV}={spec})")


def shard_positions(batch_len: int, rank: int, world: int) -> tuple[list[int], float]:
    """Positions of a global batch this rank trains on, and its share of the batch.

    Like ``DistributedSampler``: positions ``rank, rank + world, ...``; a rank left without any
    (batch smaller than the world) repeats position ``rank % batch_len`` with share 0.
    """
    positions = list(range(rank, batch_len, world))
    if not positions:
        return [rank % batch_len], 0.0
    return positions, len(positions) / batch_len


def broadcast_json(obj: Any, src: int, device: str) -> Any:
    """Broadcast a JSON-ready object from rank ``src`` (plain bytes, no pickling)."""
    payload = json.dumps(obj).encode() if dist.get_rank() == src else b""
    size = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    dist.broadcast(size, src)
    data = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    if dist.get_rank() == src:
        data.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(data, src)
    return json.loads(bytes(data.cpu().tolist()).decode())


class _FullForward(torch.nn.Module):
    """The N unrolls as one ``forward`` (what DDP wraps); ``checkpointed`` recomputes each unroll."""

    def __init__(self, model: UnrolledNet, checkpointed: bool) -> None:
        super().__init__()
        self.model = model
        self.checkpointed = checkpointed

    def forward(self, kspace: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            meas = self.model.measurement(kspace, maps, mask)
        x = meas.aty
        for k in range(self.model.num_unrolls):
            if self.checkpointed:
                x = checkpoint(self.model.unroll, k, x, meas, use_reentrant=False)
            else:
                x = self.model.unroll(k, x, meas)
        return x


class _AllReduceBeforeStep:
    """Optimiser proxy for data-parallel GLEAM: ``step()`` first replaces every gradient by the
    share-weighted sum over ranks (the gradient of the whole global batch), then steps."""

    def __init__(self, optimiser: torch.optim.Optimizer, ctx: DistContext) -> None:
        self.optimiser = optimiser
        self.ctx = ctx
        self.share = 1.0

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimiser.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        params = [p for g in self.optimiser.param_groups for p in g["params"] if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]) * self.share
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
        self.optimiser.step()


class DistributedTrainer(Trainer):
    """A :class:`Trainer` run by one ``torchrun`` process; this class trains data-parallel.

    Rank 0 writes ``config.json``, ``log.jsonl``, validation, ``best``/``last.pt`` (every rank
    holds identical weights and optimiser states) and the final model; all ranks resume from
    the same ``last.pt``, so a run may be resumed with a different number of processes.
    """

    def __init__(self, config: TrainConfig, ctx: DistContext, resume: bool = False) -> None:
        if config.prune:
            raise ConfigError(
                "pruning (--prune) is not supported under torchrun; train the pruned model in "
                "one process"
            )
        config = TrainConfig(**{**config.to_dict(), "device": ctx.device})
        self.ctx = ctx
        super().__init__(config, resume=resume)
        self.progress_rank = 0  # the rank that logs and shows progress
        self.last_loss: float | None = None

    # -- hooks for subclasses -------------------------------------------------------------
    def strategy_card(self) -> dict[str, Any]:
        return {"world_size": self.ctx.world_size, "parallel": "data"}

    def card(self, validation: dict[str, Any]):  # type: ignore[override]
        card = super().card(validation)
        card.strategy.update(self.strategy_card())
        return card

    def _comm_error(self, exc: BaseException, step: int) -> DistributedError:
        c = self.ctx
        resume = (
            f"; the run can continue from its last coordinated checkpoint with --resume "
            f"(output {self.output})"
        )
        text = _first_line(exc)
        if isinstance(exc, MriViewerError):
            return DistributedError(f"rank {c.rank} of {c.world_size}, step {step}: {text}{resume}")
        lost = isinstance(exc, RuntimeError | TimeoutError) and not text.startswith("injected")
        what = (
            f"lost contact with another rank (it failed or did not answer within "
            f"{c.timeout_s:g} s): {text}"
            if lost and _looks_like_comm_error(text)
            else f"failed: {text}"
        )
        return DistributedError(f"rank {c.rank} of {c.world_size}, step {step}: {what}{resume}")

    # -- data parallel ----------------------------------------------------------------------
    def local_batch(self, step: int) -> tuple[Batch, float]:
        """This rank's part of the global batch of ``step`` (same mask seeds as one process)."""
        indices = self.batch_indices(step)
        positions, share = shard_positions(len(indices), self.ctx.rank, self.ctx.world_size)
        samples = [
            self.train_data.sample(indices[j], stable_seed("mask", self.config.seed, step, j))
            for j in positions
        ]
        return collate(samples).to(self.device), share

    def make_step(self) -> Callable[[int], StepResult | None]:
        c, ctx = self.config, self.ctx
        if c.strategy == "gleam":
            proxies = [_AllReduceBeforeStep(opt, ctx) for opt in self.optimisers]
            ranges = module_ranges(self.model.num_unrolls, self.modules)

            def gleam_step(step: int) -> StepResult:
                batch, share = self.local_batch(step)
                self.model.train()
                with torch.no_grad():
                    meas = self.model.measurement(batch.kspace, batch.maps, batch.mask)
                x, losses = meas.aty, []
                for (start, stop), proxy in zip(ranges, proxies, strict=True):
                    proxy.share = share
                    x, value = gleam_module_step(
                        self.model,
                        start,
                        stop,
                        x,
                        meas,
                        batch.target,
                        proxy,
                        c.loss,  # type: ignore[arg-type]
                    )
                    losses.append(value * share)
                return self._global_losses(losses)

            return gleam_step
        if c.strategy not in ("e2e", "checkpoint"):
            raise ConfigError(f"strategy {c.strategy!r} has no data-parallel form")
        ddp = DistributedDataParallel(
            _FullForward(self.model, checkpointed=c.strategy == "checkpoint"),
            device_ids=[ctx.local_rank] if ctx.device.startswith("cuda") else None,
        )
        (optimiser,) = self.optimisers

        def ddp_step(step: int) -> StepResult:
            batch, share = self.local_batch(step)
            self.model.train()
            optimiser.zero_grad(set_to_none=True)
            out = ddp(batch.kspace, batch.maps, batch.mask)
            value = image_loss(out, batch.target, c.loss)
            # DDP averages gradients over ranks: weight by the rank's share of the global batch.
            (value * (share * ctx.world_size)).backward()
            optimiser.step()
            return self._global_losses([float(value.detach()) * share])

        return ddp_step

    def _global_losses(self, weighted: Sequence[float]) -> StepResult:
        t = torch.tensor(list(weighted), dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        values = [float(v) for v in t.cpu()]
        return StepResult(loss=values[-1], module_losses=values)

    # -- hooks of the training loop (Trainer.run) --------------------------------------------
    @property
    def is_logger(self) -> bool:  # type: ignore[override]
        return self.ctx.rank == self.progress_rank

    @property
    def validates(self) -> bool:  # type: ignore[override]
        return self.ctx.rank == self.progress_rank

    def progress_label(self) -> str:
        return f"{super().progress_label()} x{self.ctx.world_size}"

    @property
    def is_main(self) -> bool:  # type: ignore[override]
        return self.ctx.is_main

    def barrier(self) -> None:
        dist.barrier()

    def config_record(self) -> dict[str, Any]:
        return super().config_record() | {"world_size": self.ctx.world_size}

    def before_step(self, step: int) -> None:
        injected_failure_hook(self.ctx.rank, step)

    def make_record(self, result: StepResult | None, started: float) -> dict[str, Any] | None:
        """Data parallel: rank 0 records (every rank holds the global loss)."""
        if not self.ctx.is_main or result is None:
            return None
        lr = self.optimisers[0].param_groups[0]["lr"]
        record = step_record(self.step, result, lr, started, self.device)
        record["world_size"] = self.ctx.world_size
        return record

    def checkpoint(self) -> None:
        """Data parallel: rank 0 writes ``last.pt`` (every rank holds the same state)."""
        if self.ctx.is_main:
            self.save_state()

    def finish(self) -> None:
        """Rank 0 writes the final model (data parallel: every rank holds the same weights)."""
        if self.ctx.is_main:
            super().finish()
        dist.barrier()

    def close(self) -> None:
        _destroy()

    def on_interrupt(self) -> None:
        """Ctrl-C under torchrun: the last coordinated checkpoint is what ``--resume`` uses."""

    def wrap_error(self, exc: Exception, step: int) -> Exception:
        return self._comm_error(exc, step)


def _looks_like_comm_error(text: str) -> bool:
    words = ("connection", "closed", "timeout", "timed out", "peer", "gloo", "nccl", "socket")
    return any(w in text.lower() for w in words)


def _destroy() -> bool:
    if dist.is_initialized():
        dist.destroy_process_group()
        return True
    return False


def report_termination(ctx: DistContext) -> None:
    """When torchrun stops this rank (SIGTERM: another rank failed), say so before exiting."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stopped(signum: int, _frame: Any) -> None:
        sys.stderr.write(
            f"mriviewer: error: rank {ctx.rank} of {ctx.world_size}: stopped by the launcher "
            f"(signal {signum}), another rank failed; see its message above, then continue "
            "with --resume\n"
        )
        sys.stderr.flush()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistContext",
    "DistributedError",
    "DistributedTrainer",
    "broadcast_json",
    "init_distributed",
    "launched_with_torchrun",
    "report_termination",
    "shard_positions",
]
