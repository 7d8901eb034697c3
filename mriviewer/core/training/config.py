"""Training configuration: a dataclass read from TOML, with command-line overrides.

Example ``train.toml`` (relative folders are relative to the TOML file)::

    strategy = "gleam"          # e2e | checkpoint | gleam
    modules = 4                 # GLEAM modules M (N % M == 0); default M = N
    train_dir = "data/train"
    val_dir = "data/val"
    accelerations = [4.0]
    steps = 2000                # or epochs = 10
    lr = 1e-3
    lr_schedule = "constant"    # constant | cosine (to lr_final at the last step)
    lr_final = 0.0              # cosine only
    batch_size = 1
    device = "auto"             # auto | cpu | cuda | cuda:1
    seed = 0
    output = "runs/modl-gleam"
    loss = "l1"                 # complex l1 (default) or l2
    center_fractions = [0.08]   # optional: one 1-D centre fraction per acceleration
    crop_readout = 64           # optional: train on random 64-row readout crops (1-D masks)
    virtual_coils = 8           # optional: SVD coil compression to at most 8 virtual coils
    dynamic = false             # true: cine files (simulate --dynamic), k-t masks, batch 1

    [model]                     # build_model settings: name modl | pgd, then its arguments
    name = "modl"
    num_unrolls = 8
    features = 64
    shared = false

    [mask]                      # mask spec template (acceleration comes from accelerations)
    kind = "random"
    center_fraction = 0.08

    [prune]                     # optional: mriviewer.core.pruning.PruneSettings
    method = "it"               # it (PUN-IT) | wt (during training) | at (after, in rounds)
    density = 0.03              # kept fraction of the prunable conv weights
    exempt = ["first", "last"]
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mriviewer.core.errors import ConfigError, MriViewerError
from mriviewer.core.physics.masks import MaskSpec
from mriviewer.core.training.strategies import LOSSES, STRATEGIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Everything a training run needs (see the module docstring for the TOML layout)."""

    model: dict[str, Any] = field(
        default_factory=lambda: {"name": "modl", "num_unrolls": 4, "features": 32, "shared": False}
    )
    strategy: str = "e2e"
    modules: int | None = None
    train_dir: str = ""
    val_dir: str | None = None
    mask: dict[str, Any] = field(
        default_factory=lambda: {"kind": "random", "center_fraction": 0.08, "calib": 20}
    )
    accelerations: list[float] = field(default_factory=lambda: [4.0])
    steps: int | None = None
    epochs: int | None = None
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine
    lr_final: float = 0.0  # cosine: the learning rate at the last step
    batch_size: int = 1
    device: str = "auto"
    seed: int = 0
    output: str = "runs/train"
    loss: str = "l1"
    val_every: int = 100
    checkpoint_every: int = 100
    max_val_slices: int | None = None
    coil_method: str = "espirit"
    calib: int | None = None
    progress: bool = True
    threads: int | None = None  # torch CPU threads (None: torch's default)
    prune: dict[str, Any] | None = None  # [prune] table: mriviewer.core.pruning.PruneSettings
    # one 1-D centre fraction per acceleration (None: [mask] center_fraction for all)
    center_fractions: list[float] | None = None
    crop_readout: int | None = None  # training samples: random crops of this many readout rows
    virtual_coils: int | None = None  # SVD coil compression to at most V virtual coils
    # cine (2-D + time) data: CineDataset, k-t masks, one series per step (frames = batch axis)
    dynamic: bool = False

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate of 0-based training step ``step`` of ``total_steps``.

        ``constant``: ``lr``. ``cosine``: half a cosine from ``lr`` at step 0 to ``lr_final``
        at the last step (SGDR without restarts: Loshchilov & Hutter, ICLR 2017). A function of
        the step alone, so a resumed run continues the same curve.
        """
        if self.lr_schedule == "constant" or total_steps <= 1:
            return float(self.lr)
        t = min(max(step, 0), total_steps - 1) / (total_steps - 1)
        return float(
            self.lr_final + 0.5 * (self.lr - self.lr_final) * (1.0 + math.cos(math.pi * t))
        )

    def data_options(self, train: bool = True) -> dict[str, Any]:
        """SliceDataset keyword settings; validation data (``train=False``) is never cropped."""
        return {
            "center_fractions": self.center_fractions,
            "crop_readout": self.crop_readout if train else None,
            "virtual_coils": self.virtual_coils,
        }

    def mask_spec(self) -> MaskSpec:
        """The mask template (its acceleration is replaced per sample)."""
        try:
            return MaskSpec(**{**self.mask, "acceleration": float(self.accelerations[0])})
        except TypeError as exc:
            raise ConfigError(f"bad [mask] settings ({exc})") from exc

    def validate(self) -> TrainConfig:
        """Check values; raises ConfigError naming the bad setting. Returns self."""
        if not self.train_dir:
            raise ConfigError("no training data folder (train_dir / --train)")
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}"
            )
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSSES)}")
        if not isinstance(self.model, dict) or "name" not in self.model:
            raise ConfigError("[model] needs a name (modl or pgd)")
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError("give exactly one of steps and epochs")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        for name in ("batch_size", "val_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads is not None and int(self.threads) < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown lr_schedule {self.lr_schedule!r}; use one of {', '.join(LR_SCHEDULES)}"
            )
        if not 0.0 <= self.lr_final <= self.lr:
            raise ConfigError(f"lr_final must be in [0, lr = {self.lr}], got {self.lr_final}")
        if not self.accelerations:
            raise ConfigError("at least one acceleration is needed")
        try:
            self.mask_spec()
        except MriViewerError as exc:
            raise ConfigError(f"bad mask settings: {exc.problem}") from exc
        if self.center_fractions is not None:
            if isinstance(self.center_fractions, int | float):
                self.center_fractions = [float(self.center_fractions)]
            if len(self.center_fractions) != len(self.accelerations):
                raise ConfigError(
                    f"center_fractions needs one value per acceleration {self.accelerations}, "
                    f"got {self.center_fractions}"
                )
            for cf in self.center_fractions:
                if not 0.0 < float(cf) <= 1.0:
                    raise ConfigError(f"center fractions must be in (0, 1], got {cf}")
        if self.crop_readout is not None:
            if int(self.crop_readout) < 8:
                raise ConfigError(f"crop_readout must be >= 8 rows, got {self.crop_readout}")
            if self.mask.get("kind", "random") not in ("random", "equispaced"):
                raise ConfigError(
                    "crop_readout needs a 1-D mask (random or equispaced): a "
                    f"{self.mask.get('kind')} mask undersamples the readout axis"
                )
        if self.virtual_coils is not None and int(self.virtual_coils) < 1:
            raise ConfigError(f"virtual_coils must be >= 1, got {self.virtual_coils}")
        self._validate_dynamic()
        if self.prune is not None:
            from mriviewer.core.pruning.settings import PruneSettings

            if not isinstance(self.prune, dict) or "method" not in self.prune:
                raise ConfigError(
                    "pruning settings given without a method: use --prune it|wt|at "
                    "(or method = ... in [prune])"
                )
            PruneSettings.from_dict(self.prune)
        return self

    def _validate_dynamic(self) -> None:
        """Cine settings: k-t mask kinds, one series per batch, no readout crops or pruning;
        a spatio-temporal denoiser (``3d``/``2+1d``) needs cine data."""
        denoiser = self.model.get("denoiser", "2d")
        if not self.dynamic:
            if denoiser != "2d":
                raise ConfigError(
                    f"a {denoiser} denoiser convolves over time: it trains on cine data only "
                    "(dynamic = true, --dynamic)"
                )
            return
        if self.mask.get("kind", "random") not in ("random", "equispaced"):
            raise ConfigError(
                f"cine training takes a k-t mask (random or equispaced), not {self.mask.get('kind')!r}"
            )
        if int(self.batch_size) != 1:
            raise ConfigError("cine training takes batch_size = 1 (one series per step)")
        for name in ("crop_readout", "prune"):
            if getattr(self, name) is not None:
                raise ConfigError(f"{name} is not implemented for cine training (dynamic = true)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
PATH_FIELDS = ("train_dir", "val_dir", "output")


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Read a TOML file (optional) and apply ``overrides``; returns a validated config.

    overrides: ``{field: value}`` with ``model.KEY`` / ``mask.KEY`` for table entries; None
    values are ignored. Unknown keys raise ConfigError naming the file.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError("config file not found", path) from exc
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read TOML ({exc})", path) from exc
        unknown = sorted(set(data) - FIELDS)
        if unknown:
            raise ConfigError(
                f"unknown settings {unknown}; known: {', '.join(sorted(FIELDS))}", path
            )
        for key in PATH_FIELDS:
            if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
                # absolute and without "..": a run must not depend on the config's folder
                # staying where it was (moving it mid-run used to break the run's writes)
                data[key] = os.path.abspath(path.parent / data[key])
    defaults = TrainConfig()
    for table in ("model", "mask"):
        if table in data and not isinstance(data[table], dict):
            raise ConfigError(f"[{table}] must be a table", path)
        data[table] = {**getattr(defaults, table), **data.get(table, {})}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if "." in key:
            table, sub = key.split(".", 1)
            if table not in ("model", "mask", "prune"):
                raise ConfigError(f"unknown setting {key!r}")
            if data.get(table) is None:
                data[table] = {}
            data[table][sub] = value
        elif key in FIELDS:
            data[key] = value
        else:
            raise ConfigError(f"unknown setting {key!r}")
    if data.get("steps") is not None and data.get("epochs") is not None:
        # A command-line override of one replaces the other from the file.
        if overrides and overrides.get("steps") is not None:
            data["epochs"] = None
        elif overrides and overrides.get("epochs") is not None:
            data["steps"] = None
    if isinstance(data.get("accelerations"), int | float):
        data["accelerations"] = [float(data["accelerations"])]
    for key in ("crop_readout", "virtual_coils"):  # 0 on the command line switches it off
        if data.get(key) == 0:
            data[key] = None
    fractions = data.get("center_fractions")
    if (
        isinstance(fractions, list)
        and overrides
        and overrides.get("accelerations") is not None
        and overrides.get("center_fractions") is None
        and len(fractions) != len(data["accelerations"])
    ):
        # --accelerations replaced the file's list: its per-acceleration fractions no longer
        # apply; [mask] center_fraction (or --center-fraction) does
        data["center_fractions"] = None
    try:
        config = TrainConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"bad settings ({exc})", path) from exc
    return config.validate()
