"""P-GLEAM: greedy (GLEAM) training pipelined over ``torchrun`` processes.

The M GLEAM modules are split into D contiguous blocks, one per rank (``M % D == 0``). Each rank
owns its modules and their Adam optimisers. Per mini-batch every rank loads the same batch
(same data order and mask seeds as a single process; k-space, maps, mask and target are never
sent), rank 0 starts from ``A^H y``, rank ``r > 0`` receives the detached ``(B, H, W)`` image
(as a real ``(B, H, W, 2)`` view) and the module losses so far from rank ``r - 1``, then for each
of its modules runs forward, local loss, backward and its optimiser step. After the forward of
its last module a rank sends the detached output on with ``isend`` *before* that module's
backward, so rank ``r + 1`` starts while rank ``r`` finishes and moves to the next batch: rank
``r`` trains on batch ``k`` while rank ``r - 1`` already trains on batch ``k + 1``. No collective
runs inside a step, so the updates are exactly GLEAM's.

Coordination happens at checkpoint / validation steps only: every rank broadcasts its modules'
weights (so every rank then holds the full model), the last rank (which sees every module's loss
and writes ``log.jsonl``) validates and keeps ``best``, every rank writes its part of the state
(``pgleam/stepSSSSSSSS.rankR.pt``: its modules' weights and optimiser states), and after a
barrier rank 0 writes the manifest ``last.pgleam.json``. Resume reads every part, so a run may
resume with another number of processes (any D dividing M). Rank 0 writes the final model
(safetensors + card with strategy ``pgleam``, N, M and the world size).

:class:`PGleamTrainer` supplies the hooks of the one training loop
(:meth:`mriviewer.core.training.Trainer.run`); the throughput benchmark of the pipeline is
:mod:`mriviewer.benchmarks.pgleam`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mriviewer.core.checkpoints import save_model
from mriviewer.core.errors import ConfigError
from mriviewer.core.files import atomic_write_path, atomic_write_text
from mriviewer.core.models import UnrolledNet
from mriviewer.core.physics.masks import stable_seed
from mriviewer.core.training.config import TrainConfig
from mriviewer.core.training.data import Batch, collate
from mriviewer.core.training.distributed import (
    DistContext,
    DistributedTrainer,
    broadcast_json,
)
from mriviewer.core.training.strategies import (
    StepResult,
    image_loss,
    module_parameters,
    module_ranges,
)
from mriviewer.core.training.trainer import check_same_settings, step_record

MANIFEST_FORMAT = "mriviewer-pgleam-state/1"
PART_FORMAT = "mriviewer-pgleam-part/1"


def rank_modules(modules: int, world_size: int, rank: int) -> list[int]:
    """The contiguous block of module indices rank ``rank`` owns (refuses ``M % D != 0``)."""
    if modules % world_size != 0:
        fits = [d for d in range(2, world_size) if modules % d == 0]
        raise ConfigError(
            f"P-GLEAM splits the M={modules} GLEAM modules into equal contiguous blocks, one per "
            f"process, so M must be divisible by the number of processes ({world_size}); use "
            f"--modules a multiple of {world_size} (N must stay divisible by M)"
            + (f" or --nproc-per-node {fits[-1]}" if fits else "")
        )
    per = modules // world_size
    return list(range(rank * per, (rank + 1) * per))


class PipelineStage:
    """One rank's block of GLEAM modules in the pipeline (used by training and the benchmark).

    optimisers: all M per-module optimisers (only this rank's are stepped). ``step(batch)``
    returns every module's loss ``(M,)`` on the last rank, None elsewhere.
    """

    def __init__(
        self,
        model: UnrolledNet,
        modules: int,
        optimisers: list[torch.optim.Optimizer],
        ctx: DistContext,
        loss: str = "l1",
    ) -> None:
        self.model = model
        self.modules = modules
        self.ranges = module_ranges(model.num_unrolls, modules)
        self.owned = rank_modules(modules, ctx.world_size, ctx.rank)
        self.optimisers = optimisers
        self.ctx = ctx
        self.loss = loss
        self._pending: list[tuple[Any, torch.Tensor]] = []

    def wait_sends(self) -> None:
        """Wait (bounded by the timeout) until the previous sends were delivered."""
        for work, _buffer in self._pending:
            work.wait(timeout=self.ctx.timeout)
        self._pending = []

    def _receive(self, batch: Batch, meas_aty: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        real = torch.view_as_real(meas_aty)
        image = torch.empty(real.shape, dtype=real.dtype, device=real.device)
        src = self.ctx.rank - 1
        works = [dist.irecv(image, src=src, tag=0), dist.irecv(losses, src=src, tag=1)]
        for work in works:
            work.wait(timeout=self.ctx.timeout)
        return torch.view_as_complex(image)

    def step(self, batch: Batch) -> torch.Tensor | None:
        """Train this rank's modules on ``batch`` (see the module docstring)."""
        model, ctx = self.model, self.ctx
        model.train()
        with torch.no_grad():
            meas = model.measurement(batch.kspace, batch.maps, batch.mask)
        losses = torch.zeros(self.modules, dtype=torch.float64, device=meas.aty.device)
        x = meas.aty if ctx.rank == 0 else self._receive(batch, meas.aty, losses)
        for i, m in enumerate(self.owned):
            start, stop = self.ranges[m]
            optimiser = self.optimisers[m]
            optimiser.zero_grad(set_to_none=True)
            out = x.detach()
            for k in range(start, stop):
                out = model.unroll(k, out, meas)
            value = image_loss(out, batch.target, self.loss)
            losses[m] = value.detach()
            if i == len(self.owned) - 1 and not ctx.is_last:
                # Hand the image on before this module's backward: the next rank starts now.
                self.wait_sends()
                image = torch.view_as_real(out.detach()).contiguous()
                sent = losses.clone()
                dst = ctx.rank + 1
                self._pending = [
                    (dist.isend(image, dst=dst, tag=0), image),
                    (dist.isend(sent, dst=dst, tag=1), sent),
                ]
            value.backward()
            optimiser.step()
            x = out.detach()
        return losses if ctx.is_last else None


class PGleamTrainer(DistributedTrainer):
    """P-GLEAM training by one ``torchrun`` process (see the module docstring)."""

    def __init__(self, config: TrainConfig, ctx: DistContext, resume: bool = False) -> None:
        super().__init__(config, ctx, resume=resume)
        self.owned = rank_modules(self.modules, ctx.world_size, ctx.rank)
        self.progress_rank = ctx.world_size - 1  # the last rank sees every module's loss
        self.stage = PipelineStage(self.model, self.modules, self.optimisers, ctx, config.loss)
        self.owner = self._owners()

    def _owners(self) -> dict[str, int]:
        """State-dict key -> owning rank (its module's rank; anything outside modules: 0)."""
        per = self.modules // self.ctx.world_size
        by_id: dict[int, int] = {}
        for m, (start, stop) in enumerate(module_ranges(self.model.num_unrolls, self.modules)):
            for p in module_parameters(self.model, start, stop):
                by_id[id(p)] = m // per
        return {
            name: by_id.get(id(p), 0)
            for name, p in self.model.named_parameters(remove_duplicate=False)
        }

    def _module_of(self) -> dict[str, int]:
        by_id: dict[int, int] = {}
        for m, (start, stop) in enumerate(module_ranges(self.model.num_unrolls, self.modules)):
            for p in module_parameters(self.model, start, stop):
                by_id[id(p)] = m
        return {name: by_id[id(p)] for name, p in self.model.named_parameters() if id(p) in by_id}

    def strategy_card(self) -> dict[str, Any]:
        return {
            "world_size": self.ctx.world_size,
            "parallel": "pipeline",
            "modules_per_rank": self.modules // self.ctx.world_size,
        }

    # -- state -------------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:  # type: ignore[override]
        return self.output / "last.pgleam.json"

    def _part_path(self, step: int, rank: int) -> Path:
        return self.output / "pgleam" / f"step{step:08d}.rank{rank}.pt"

    def sync_model(self) -> None:
        """Every rank broadcasts its modules' weights: afterwards all ranks hold the full model."""
        self.stage.wait_sends()
        with torch.no_grad():
            for name, tensor in self.model.state_dict().items():
                dist.broadcast(tensor, src=self.owner.get(name, 0))

    def save_state(self) -> Path:
        """Each rank writes its part; after a barrier rank 0 writes the manifest."""
        ctx = self.ctx
        module_of = self._module_of()
        part = {
            "format": PART_FORMAT,
            "step": self.step,
            "rank": ctx.rank,
            "world_size": ctx.world_size,
            "modules": self.owned,
            "weights": {
                k: v.detach().cpu()
                for k, v in self.model.state_dict().items()
                if module_of.get(k) in self.owned
            },
            "optimisers": {str(m): self.optimisers[m].state_dict() for m in self.owned},
            "best": json.dumps(self.best),
            "torch_rng": torch.get_rng_state(),
        }
        path = self._part_path(self.step, ctx.rank)
        with atomic_write_path(path) as tmp:
            torch.save(part, tmp)
        dist.barrier()
        if ctx.is_main:
            manifest = {
                "format": MANIFEST_FORMAT,
                "step": self.step,
                "world_size": ctx.world_size,
                "parts": [
                    str(self._part_path(self.step, r).relative_to(self.output))
                    for r in range(ctx.world_size)
                ],
                "config": self._state_config(),
            }
            atomic_write_text(self.last_path, json.dumps(manifest, indent=2) + "\n")
            for old in (self.output / "pgleam").glob("step*.rank*.pt"):
                try:
                    if int(old.name[4:12]) < self.step:
                        old.unlink(missing_ok=True)
                except ValueError:
                    continue
        return self.last_path

    def load_state(self) -> None:
        """Restore from the manifest and every part (any world size whose D divides M)."""
        path = self.last_path
        if not path.is_file():
            raise ConfigError(
                "nothing to resume: no last.pgleam.json (P-GLEAM manifest) in the output folder",
                self.output,
            )
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the P-GLEAM manifest ({exc})", path) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ConfigError("not a mriviewer P-GLEAM manifest", path)
        check_same_settings(manifest.get("config", {}), self._state_config(), path)
        weights: dict[str, torch.Tensor] = {}
        optimisers: dict[int, Any] = {}
        best: dict[str, Any] = {}
        for rel in manifest.get("parts", []):
            part_path = self.output / rel
            try:
                part = torch.load(part_path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable part is a clean error
                raise ConfigError(f"cannot read P-GLEAM state part ({exc})", part_path) from exc
            if not isinstance(part, dict) or part.get("format") != PART_FORMAT:
                raise ConfigError("not a mriviewer P-GLEAM state part", part_path)
            if int(part["step"]) != int(manifest["step"]):
                raise ConfigError("state part is from another step than the manifest", part_path)
            weights.update(part["weights"])
            optimisers.update({int(m): s for m, s in part["optimisers"].items()})
            best = json.loads(part["best"]) or best
            if int(part["rank"]) == self.ctx.rank:
                torch.set_rng_state(part["torch_rng"])
        missing = sorted(set(self._module_of()) - set(weights))
        if missing or set(optimisers) != set(range(self.modules)):
            raise ConfigError(
                f"P-GLEAM state is incomplete (missing weights {missing[:3]} or optimiser states)",
                path,
            )
        state = self.model.state_dict()
        state.update(weights)
        self.model.load_state_dict(state)
        for m in self.owned:
            self.optimisers[m].load_state_dict(optimisers[m])
        self.step = int(manifest["step"])
        self.best = best

    # -- hooks of the training loop (Trainer.run) --------------------------------------------
    def make_step(self) -> Callable[[int], StepResult | None]:
        c = self.config

        def pgleam_step(step: int) -> StepResult | None:
            indices = self.batch_indices(step)
            samples = [
                self.train_data.sample(i, stable_seed("mask", c.seed, step, j))
                for j, i in enumerate(indices)
            ]
            losses = self.stage.step(collate(samples).to(self.device))
            if losses is None:
                return None
            values = [float(v) for v in losses.cpu()]
            return StepResult(loss=values[-1], module_losses=values)

        return pgleam_step

    def make_record(self, result: StepResult | None, started: float) -> dict[str, Any] | None:
        """The last rank records (it sees every module's loss)."""
        if result is None:
            return None
        lr = self.optimisers[self.owned[0]].param_groups[0]["lr"]
        record = step_record(self.step, result, lr, started, self.device, " (last rank)")
        record["world_size"] = self.ctx.world_size
        return record

    def coordinate(self, validate: bool, checkpoint: bool) -> None:
        """At validation / checkpoint steps every rank broadcasts its modules' weights."""
        self.sync_model()

    def checkpoint(self) -> None:
        """Every rank writes its part, rank 0 the manifest (see :meth:`save_state`)."""
        self.save_state()

    def finish(self) -> None:
        """Rank 0 saves the assembled model (the last step was a coordination step)."""
        info = broadcast_json(
            {"validation": self.last_validation, "best": self.best, "loss": self.last_loss},
            src=self.ctx.world_size - 1,
            device=self.device,
        )
        self.last_validation, self.best, self.last_loss = (
            info["validation"],
            info["best"],
            info["loss"],
        )
        if self.ctx.is_main:
            save_model(
                self.output / "model.safetensors", self.model, self.card(self.last_validation)
            )
        dist.barrier()
