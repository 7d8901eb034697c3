"""Headless training core: data, strategies (e2e, checkpoint, GLEAM), trainer, probes."""

from mriviewer.core.training.config import TrainConfig, load_config
from mriviewer.core.training.data import Batch, Sample, SliceDataset, collate
from mriviewer.core.training.strategies import (
    LOSSES,
    STRATEGIES,
    StepResult,
    check_strategy,
    gleam_module_step,
    image_loss,
    make_optimisers,
    module_parameters,
    module_ranges,
    run_modules,
    train_step,
)
from mriviewer.core.training.trainer import Trainer, TrainResult, train, validate_model

__all__ = [
    "LOSSES",
    "STRATEGIES",
    "Batch",
    "Sample",
    "SliceDataset",
    "StepResult",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "check_strategy",
    "collate",
    "gleam_module_step",
    "image_loss",
    "load_config",
    "make_optimisers",
    "module_parameters",
    "module_ranges",
    "run_modules",
    "train",
    "train_step",
    "validate_model",
]
