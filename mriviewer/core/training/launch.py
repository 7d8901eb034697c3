"""``mriviewer train`` under ``torchrun``: join the job, pick the trainer, report.

Above both distributed trainers: :class:`mriviewer.core.training.distributed.DistributedTrainer`
(data parallel) and :class:`mriviewer.core.training.pgleam.PGleamTrainer` (P-GLEAM), so neither
imports the other's module back.
"""

from __future__ import annotations

from mriviewer.core.errors import MriViewerError
from mriviewer.core.training.config import TrainConfig
from mriviewer.core.training.distributed import (
    DistContext,
    DistributedError,
    DistributedTrainer,
    init_distributed,
    launched_with_torchrun,
    report_termination,
)
from mriviewer.core.training.pgleam import PGleamTrainer
from mriviewer.core.training.trainer import Trainer


def make_distributed_trainer(config: TrainConfig, ctx: DistContext, resume: bool) -> Trainer:
    """The trainer for ``config.strategy`` under torchrun: P-GLEAM or data parallel."""
    if config.strategy == "pgleam":
        return PGleamTrainer(config, ctx, resume=resume)
    return DistributedTrainer(config, ctx, resume=resume)


def run_distributed(config: TrainConfig, resume: bool, timeout_s: float) -> int:
    """``mriviewer train`` under torchrun: join the job, train, print a summary on rank 0."""
    ctx = init_distributed(config.device, timeout_s)
    report_termination(ctx)
    try:
        trainer = make_distributed_trainer(config, ctx, resume)
    except MriViewerError as exc:
        raise DistributedError(f"rank {ctx.rank} of {ctx.world_size}: {exc}") from exc
    if ctx.is_main:
        m = config.model
        kind = (
            f"P-GLEAM M={trainer.modules} over {ctx.world_size} processes "
            f"({trainer.modules // ctx.world_size} modules each)"
            if config.strategy == "pgleam"
            else f"{config.strategy} data parallel over {ctx.world_size} processes"
            + (f", M={trainer.modules}" if config.strategy == "gleam" else "")
        )
        print(
            f"training {m['name']} N={trainer.model.num_unrolls} "
            f"({trainer.model.parameter_count()} parameters) with {kind} on "
            f"{len(trainer.train_data)} slices, {trainer.total_steps} steps, backend "
            f"{ctx.backend}, device {ctx.device}, loss {config.loss}",
            flush=True,
        )
    result = trainer.run()
    if ctx.is_main:
        loss = f", last loss {result.last_loss:.4g}" if result.last_loss is not None else ""
        print(f"done: {result.steps} steps{loss}")
        if result.validation:
            v = result.validation
            print(
                f"validation: PSNR {v['psnr']:.2f} dB (zero-filled "
                f"{v['zero_filled_psnr']:.2f} dB), SSIM {v['ssim']:.4f}"
            )
        print(
            f"final model: {result.output / 'model.safetensors'}; "
            f"log: {result.output / 'log.jsonl'}",
            flush=True,
        )
    return 0


__all__ = ["launched_with_torchrun", "make_distributed_trainer", "run_distributed"]
