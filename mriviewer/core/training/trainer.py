"""The training loop: data, strategy, validation, logging, best/last checkpoints and resume.

Output folder layout::

    config.json        the resolved TrainConfig (plus ``memory_plan`` under --memory-budget)
    log.jsonl          one JSON record per step: loss, module losses, lr, seconds, peak memory,
                       and on validation steps val_psnr / val_ssim / val_nmse / zero_filled_psnr
    best.safetensors   best-on-validation weights + best.json model card (save_model)
    model.safetensors  final weights + model.json card
    last.pt            resume state: weights, every optimiser's state (all M for GLEAM), step,
                       best metric, RNG state; tensors and plain containers only, written
                       atomically, read back with torch.load(weights_only=True)

Batches and masks depend only on ``(seed, step)``, so an interrupted run resumed with
``resume=True`` reaches the same parameters as an uninterrupted one.

:meth:`Trainer.run` is the one training loop, in one process and under ``torchrun``: keep-best,
pruning and a caller's progress function are callbacks
(:mod:`mriviewer.core.training.callbacks`), and what differs between one process and several
(which rank records, validates and writes, the collective steps) are the hooks that
:class:`mriviewer.core.training.distributed.DistributedTrainer` overrides: ``is_main``,
``is_logger``, ``validates``, ``barrier``, ``config_record``, ``make_step``, ``before_step``,
``make_record``, ``coordinate``, ``checkpoint``, ``finish``, ``close``, ``on_interrupt`` and
``wrap_error``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from mriviewer.core.checkpoints import ModelCard, save_model
from mriviewer.core.device import resolve_device, synchronize
from mriviewer.core.errors import ConfigError, MriViewerError
from mriviewer.core.files import atomic_write_path, atomic_write_text
from mriviewer.core.io.fastmri import center_crop
from mriviewer.core.memory import peak_memory_bytes, reset_peak_memory
from mriviewer.core.metrics import nmse, psnr, ssim
from mriviewer.core.models import UnrolledNet, build_model
from mriviewer.core.physics.masks import stable_seed
from mriviewer.core.training.callbacks import Callback, KeepBest, OnRecord
from mriviewer.core.training.cine_data import CineDataset
from mriviewer.core.training.config import TrainConfig
from mriviewer.core.training.data import Sample, SliceDataset, collate
from mriviewer.core.training.strategies import (
    StepResult,
    check_strategy,
    make_optimisers,
    train_step,
)

STATE_FORMAT = "mriviewer-train-state/1"


@dataclass
class TrainResult:
    """What a finished (or stopped) run produced."""

    output: Path
    steps: int
    last_loss: float | None
    best: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)


def step_record(
    step: int,
    result: StepResult,
    lr: float,
    started: float,
    device: str,
    memory_note: str = "",
) -> dict[str, Any]:
    """The ``log.jsonl`` fields every trainer writes for a step that began at ``started``.

    result: the step's :class:`StepResult`; lr: the optimiser's learning rate; memory_note is
    appended to the memory method (e.g. which rank measured it).
    """
    memory, memory_method = peak_memory_bytes(device)
    return {
        "step": step,
        "loss": result.loss,
        "module_losses": result.module_losses,
        "lr": lr,
        "seconds": time.perf_counter() - started,
        "peak_memory_bytes": memory,
        "memory_method": memory_method + memory_note,
    }


def check_same_settings(saved: Any, current: dict[str, Any], path: Path) -> None:
    """Raise ConfigError naming the differing keys when a saved run's settings differ."""
    if saved != current:
        diff = sorted(k for k in current if saved.get(k) != current.get(k))
        raise ConfigError(f"cannot resume: settings differ from the saved run ({diff})", path)


def make_dataset(config: TrainConfig, train: bool = True) -> SliceDataset | CineDataset:
    """The training (or validation, ``train=False``) data of ``config``: a
    :class:`SliceDataset`, or a :class:`CineDataset` when ``config.dynamic``."""
    spec = config.mask_spec()
    folder = config.train_dir if train else config.val_dir
    max_slices = None if train else config.max_val_slices
    if config.dynamic:
        return CineDataset(
            folder,
            spec,
            config.accelerations,
            config.coil_method,
            max_slices=max_slices,
            center_fractions=config.center_fractions,
            virtual_coils=config.virtual_coils,
        )
    return SliceDataset(
        folder,
        spec,
        config.accelerations,
        config.coil_method,
        config.calib,
        max_slices=max_slices,
        **config.data_options(train=train),
    )


def validate_model(model: UnrolledNet, samples: list[Sample], device: str) -> dict[str, float]:
    """Mean PSNR / SSIM / NMSE of the model and of zero-filled ``A^H y`` on ``samples``.

    Magnitudes in original units, centre-cropped to each reference (fastMRI metrics). A cine
    sample is scored as one volume of its frames (its output is the whole ``(T, H, W)`` batch).
    """
    model.eval()
    rows = []
    with torch.inference_mode():
        for sample in samples:
            batch = collate([sample]).to(device)
            meas = model.measurement(batch.kspace, batch.maps, batch.mask)
            out = model(batch.kspace, batch.maps, batch.mask)
            ref = sample.reference
            row = {}
            cine = sample.kspace.ndim == 4
            for key, image in (("", out), ("zero_filled_", meas.aty)):
                image = image if cine else image[0]
                pred = center_crop(np.abs(image.cpu().numpy()) * sample.scale, ref.shape[-2:])
                row[f"{key}psnr"] = psnr(ref, pred)
                row[f"{key}ssim"] = ssim(ref, pred)
                row[f"{key}nmse"] = nmse(ref, pred)
            rows.append(row)
    model.train()
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


class Trainer:
    """One training run of :class:`TrainConfig` (``run()`` trains; ``resume`` continues).

    model: train this model instead of a fresh ``build_model(config.model)`` (e.g. a pruned model
    with its masks, for PUN-AT fine-tuning). callbacks: extra :class:`Callback` objects, called
    after the run's own (pruning from ``config.prune``, then keep-best). memory_plan: the
    choice of ``train --memory-budget`` (:meth:`mriviewer.benchmarks.plan.Plan.record`), kept in
    ``config.json`` and in the model cards' ``extra``. follow_load: on CPU without
    ``config.threads``, re-pick torch's thread count from the free cores every 2 s
    (:class:`mriviewer.core.threads.ThreadGovernor`).
    """

    def __init__(
        self,
        config: TrainConfig,
        resume: bool = False,
        *,
        model: UnrolledNet | None = None,
        callbacks: Iterable[Callback] = (),
        memory_plan: dict[str, Any] | None = None,
        follow_load: bool = False,
    ) -> None:
        self.config = config.validate()
        #: what ``train --memory-budget`` chose (budget, device, N, M, peak): recorded in
        #: config.json and the model cards
        self.memory_plan = memory_plan
        self.device = resolve_device(config.device)
        if config.threads is not None:
            torch.set_num_threads(int(config.threads))
        from mriviewer.core.threads import ThreadGovernor

        #: with ``follow_load`` (``mriviewer train`` without ``--threads``) CPU training follows
        #: the free cores step by step, so a neighbour that starts mid-run gets its core back
        #: within seconds; off by default, since another thread count changes the order of
        #: parallel sums and a run is then no longer bit-for-bit repeatable
        self.thread_governor = ThreadGovernor(
            enabled=follow_load
            and config.threads is None
            and torch.device(self.device).type == "cpu"
        )
        self.output = Path(config.output)
        self.resume = resume
        torch.manual_seed(config.seed)
        if model is None:
            model = build_model(dict(config.model))
        self.model = model.to(self.device)
        self.pruning = None
        if config.prune:
            # Pruning builds on training: its callback is imported only for a run that prunes,
            # and puts its masks on before the optimisers are built.
            from mriviewer.core.pruning.hook import TrainerPruning

            self.pruning = TrainerPruning(config.prune, self.model)
        self.callbacks: list[Callback] = [
            *([self.pruning] if self.pruning is not None else []),
            KeepBest(),
            *callbacks,
        ]
        self.modules = check_strategy(self.model, config.strategy, config.modules)
        self.optimisers = make_optimisers(self.model, config.strategy, self.modules, config.lr)
        self.train_data = make_dataset(config, train=True)
        self.val_data = make_dataset(config, train=False) if config.val_dir else None
        self.steps_per_epoch = self.train_data.steps_per_epoch(config.batch_size)
        self.total_steps = (
            int(config.steps)
            if config.steps is not None
            else int(config.epochs) * self.steps_per_epoch
        )
        self.step = 0
        self.best: dict[str, Any] = {}
        self.last_validation: dict[str, Any] = {}
        self.last_loss: float | None = None
        self._val_samples: list[Sample] | None = None

    # -- state ---------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.output / "last.pt"

    def save_state(self) -> Path:
        """Write ``last.pt`` atomically (weights, all optimisers, step, best, RNG state)."""
        state = {
            "format": STATE_FORMAT,
            "step": self.step,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimisers": [opt.state_dict() for opt in self.optimisers],
            "best": json.dumps(self.best),
            "config": json.dumps(self._state_config()),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        with atomic_write_path(self.last_path) as tmp:
            torch.save(state, tmp)
        return self.last_path

    def _state_config(self) -> dict[str, Any]:
        """The settings a resumed run must share with the original one."""
        c = self.config
        return (
            {
                "model": self.model.config(),
                "strategy": c.strategy,
                "modules": self.modules,
                "seed": c.seed,
                "batch_size": c.batch_size,
                "loss": c.loss,
                "lr": c.lr,
            }
            | (
                # the cosine curve is tied to the run's length: a resume must keep it
                {"lr_schedule": c.lr_schedule, "lr_final": c.lr_final, "steps": self.total_steps}
                if c.lr_schedule != "constant"
                else {}
            )
            | ({"prune": self.pruning.state_config()} if self.pruning else {})
        )

    def load_state(self) -> None:
        """Restore ``last.pt``; refuses a state from a different model/strategy/seed."""
        path = self.last_path
        if not path.is_file():
            raise ConfigError("nothing to resume: no last.pt in the output folder", self.output)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a clean error
            raise ConfigError(f"cannot read training state ({exc})", path) from exc
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ConfigError("not a mriviewer training state", path)
        saved = json.loads(state["config"])
        check_same_settings(saved, self._state_config(), path)
        self.model.load_state_dict(state["model"])
        if len(state["optimisers"]) != len(self.optimisers):
            raise ConfigError("cannot resume: optimiser count differs", path)
        for opt, opt_state in zip(self.optimisers, state["optimisers"], strict=True):
            opt.load_state_dict(opt_state)
        self.step = int(state["step"])
        self.best = json.loads(state["best"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    # -- pieces --------------------------------------------------------------------------
    def batch_indices(self, step: int) -> list[int]:
        """Dataset indices of the batch at ``step`` (deterministic in seed and step)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        return self.train_data.epoch_batches(epoch, self.config.batch_size, self.config.seed)[
            position
        ]

    def validation_samples(self) -> list[Sample]:
        if self._val_samples is None:
            assert self.val_data is not None
            self._val_samples = [
                self.val_data.validation_sample(i, acc)
                for acc in self.val_data.accelerations
                for i in range(len(self.val_data))
            ]
        return self._val_samples

    def card(self, validation: dict[str, Any]) -> ModelCard:
        c = self.config
        return ModelCard(
            strategy={
                "name": c.strategy,
                "unrolls": self.model.num_unrolls,
                "modules": self.modules,
            },
            training_data={
                "train": self.train_data.describe(),
                "val": self.val_data.describe() if self.val_data else None,
            },
            mask=c.mask_spec().to_dict() | {"seed": "per sample and step"},
            accelerations=list(c.accelerations),
            loss=c.loss,
            steps=self.step,
            validation=validation,
            extra={
                "lr": c.lr,
                "lr_schedule": c.lr_schedule,
                "batch_size": c.batch_size,
                "seed": c.seed,
                "optimiser": "Adam",
            }
            | ({"memory_plan": self.memory_plan} if self.memory_plan else {}),
        )

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.output / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _trim_log(self) -> None:
        """On resume, drop log records of steps after the restored one (they will be redone)."""
        path = self.output / "log.jsonl"
        if not path.is_file():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                step = json.loads(line).get("step", 0)
                if isinstance(step, int) and step <= self.step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    # -- hooks: one process here; DistributedTrainer overrides them ------------------------
    is_main = True  # this process writes the run's files (config, state, models)
    is_logger = True  # this process writes log.jsonl and shows progress
    validates = True  # this process validates (and so keeps the best weights)

    def barrier(self) -> None:
        """Wait for every process of the run (one process: nothing to wait for)."""

    def config_record(self) -> dict[str, Any]:
        """What ``config.json`` holds (and the memory plan that set N and M, if any)."""
        record = self.config.to_dict()
        if self.memory_plan:
            record["memory_plan"] = self.memory_plan
        return record

    def prepare(self) -> None:
        """Output folder, resume (every process restores the state, the logger trims the log)
        or refuse a used folder, then ``config.json``."""
        if self.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        if self.resume:
            self.load_state()
            if self.is_logger:
                self._trim_log()
        elif self.last_path.exists():
            raise ConfigError(
                "output folder already holds a training run; use --resume or another --output",
                self.output,
            )
        self.barrier()  # nobody writes into the folder before every process has checked it
        if self.is_main:
            atomic_write_text(
                self.output / "config.json", json.dumps(self.config_record(), indent=2) + "\n"
            )

    def make_step(self) -> Callable[[int], StepResult | None]:
        """The function training step ``step`` (0-based); None where this rank has no loss."""
        c = self.config

        def one_step(step: int) -> StepResult:
            indices = self.batch_indices(step)
            samples = [
                self.train_data.sample(i, stable_seed("mask", c.seed, step, j))
                for j, i in enumerate(indices)
            ]
            batch = collate(samples).to(self.device)
            # self.optimisers is read per step: pruning may rebuild them before the first one
            result = train_step(self.model, batch, self.optimisers, c.strategy, c.loss)
            synchronize(self.device)
            return result

        return one_step

    def set_lr(self, lr: float) -> None:
        """Set every optimiser's learning rate (the config's schedule, before each step)."""
        for optimiser in self.optimisers:
            for group in optimiser.param_groups:
                group["lr"] = lr

    def before_step(self, step: int) -> None:
        """Before 1-based step ``step`` (distributed: the test-only failure injection)."""

    def make_record(self, result: StepResult | None, started: float) -> dict[str, Any] | None:
        """The step's ``log.jsonl`` record on the recording rank, else None."""
        if result is None:
            return None
        lr = self.optimisers[0].param_groups[0]["lr"]
        record = step_record(self.step, result, lr, started, self.device)
        record.update(self.model.learned_scalars())
        return record

    def coordinate(self, validate: bool, checkpoint: bool) -> None:
        """Before a validation and/or checkpoint step (P-GLEAM assembles the model here)."""

    def checkpoint(self) -> None:
        """Write the resume state."""
        self.save_state()

    def finish(self) -> None:
        """Write the final model (``model.safetensors`` + card)."""
        save_model(self.output / "model.safetensors", self.model, self.card(self.last_validation))

    def close(self) -> None:
        """After a successful run (distributed: leave the process group)."""

    def on_interrupt(self) -> None:
        """Ctrl-C: keep what was trained (``last.pt``) so ``--resume`` continues."""
        self.save_state()

    def wrap_error(self, exc: Exception, step: int) -> Exception:
        """The error to raise for ``exc`` at ``step`` (distributed: naming the rank)."""
        return exc

    def progress_label(self) -> str:
        c = self.config
        return f"train {c.model['name']} {c.strategy}"

    # -- the loop --------------------------------------------------------------------------
    def _raise(self, exc: Exception, step: int) -> NoReturn:
        wrapped = self.wrap_error(exc, step)
        if wrapped is exc:
            raise exc
        raise wrapped from exc

    def run(
        self,
        on_step: Callable[[int, dict[str, Any]], None] | None = None,
        callbacks: Iterable[Callback] = (),
    ) -> TrainResult:
        """Train to ``total_steps``; on KeyboardInterrupt save the resume state and re-raise.

        on_step: ``fn(step, record)`` with every complete log record. callbacks: for this run,
        after the trainer's own (see :mod:`mriviewer.core.training.callbacks`).
        """
        from tqdm import tqdm

        hooks = [*self.callbacks, *callbacks, *([OnRecord(on_step)] if on_step else [])]
        try:
            self.prepare()
            for cb in hooks:
                cb.on_start(self)
            step_fn = self.make_step()
        except MriViewerError:
            raise
        except Exception as exc:  # noqa: BLE001 - distributed runs name the rank
            self._raise(exc, self.step)
        reset_peak_memory(self.device)
        c = self.config
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not (c.progress and self.is_logger),
            desc=self.progress_label(),
            unit="step",
        )
        try:
            while self.step < self.total_steps:
                self.thread_governor.update()
                started = time.perf_counter()
                self.before_step(self.step + 1)
                self.set_lr(c.lr_at(self.step, self.total_steps))
                result = step_fn(self.step)
                self.step += 1
                done = self.step == self.total_steps
                if result is not None:
                    self.last_loss = result.loss
                    if not math.isfinite(result.loss):
                        raise ConfigError(
                            f"training diverged at step {self.step} (loss {result.loss}); lower lr"
                        )
                record = self.make_record(result, started)
                if record is not None:
                    for cb in hooks:
                        cb.on_step(self, record)
                validate = self.val_data is not None and (self.step % c.val_every == 0 or done)
                checkpoint = self.step % c.checkpoint_every == 0 or done
                if validate or checkpoint:
                    self.coordinate(validate, checkpoint)
                if validate and self.validates:
                    metrics = validate_model(self.model, self.validation_samples(), self.device)
                    self.last_validation = metrics | {"step": self.step}
                    if record is not None:
                        record.update({f"val_{k}": v for k, v in metrics.items()})
                    for cb in hooks:
                        cb.on_validation(self, metrics)
                if record is not None and self.is_logger:
                    self._log(record)
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4g}")
                    for cb in hooks:
                        cb.on_record(self, record)
                if checkpoint:
                    self.checkpoint()
            self.finish()
        except KeyboardInterrupt:
            self.on_interrupt()
            raise
        except Exception as exc:  # noqa: BLE001 - distributed runs name the rank and step
            self._raise(exc, self.step + 1)
        finally:
            bar.close()
        self.close()
        result = TrainResult(
            output=self.output,
            steps=self.step,
            last_loss=self.last_loss,
            best=self.best,
            validation=self.last_validation,
        )
        for cb in hooks:
            cb.on_end(self, result)
        return result


def train(
    config: TrainConfig,
    resume: bool = False,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    callbacks: Iterable[Callback] = (),
) -> TrainResult:
    """Run (or with ``resume`` continue) the training described by ``config``."""
    return Trainer(config, resume=resume, callbacks=callbacks).run(on_step=on_step)


__all__ = [
    "STATE_FORMAT",
    "TrainResult",
    "Trainer",
    "check_same_settings",
    "make_dataset",
    "step_record",
    "train",
    "validate_model",
]
