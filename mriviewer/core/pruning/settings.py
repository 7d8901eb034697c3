"""Pruning settings (the ``[prune]`` table of a training config), validated into ConfigError.

Density is the kept fraction of the prunable weights everywhere (never "sparsity").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from mriviewer.core.errors import ConfigError

METHODS = ("it", "wt", "at")
METHOD_NAMES = {"it": "pun-it", "wt": "pun-wt", "at": "pun-at"}
REWINDS = ("none", "init")
SCHEDULES = ("cubic", "linear")
INIT_SCALES = ("none", "fan-in")


def check_density(density: Any, what: str = "density") -> float:
    """``density`` as a float in (0, 1]; ConfigError otherwise."""
    try:
        value = float(density)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be a number in (0, 1], got {density!r}") from exc
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ConfigError(
            f"{what} must be in (0, 1] (the kept fraction of prunable weights), got {density!r}"
        )
    return value


@dataclass
class PruneSettings:
    """How to prune (PUN-IT / PUN-WT / PUN-AT) and which weights.

    method: ``it`` (learned mask at initialisation), ``wt`` (magnitude during training), ``at``
    (magnitude after training, in rounds). density: kept fraction of the prunable weights.
    layers: fnmatch patterns over parameter names selecting the prunable weights (default: every
    conv weight). exempt: ``first`` / ``last`` (each denoiser's 2->F and F->2 convs) or name
    patterns left dense. min_layer_density: every pruned layer keeps at least this fraction
    (its own top scores) before the global top-k fills the rest (0 = plain global top-k; a
    guard against layer collapse at low density).

    PUN-IT: temperature (start) and temperature_final (None = fixed T; else exponential
    annealing to it), beta (weight of KL(Ber(p) || Ber(density)), averaged over weights),
    search_steps, search_lr (Adam on the logits), init_prob (initial keep probability;
    default the target density, so the relaxed net starts at the target density in expectation),
    straight_through (hard 0/1 mask forward, relaxed gradient), log_every (hard-mask loss).
    init_scale (PUN-IT only): ``none`` (train from the kept initial weights as they are) or ``fan-in``
    (sparsity-aware initialisation, Evci et al., AAAI 2022, "Gradient flow in sparse neural
    networks and how lottery tickets win": each output channel's kept weights are scaled by
    ``sqrt(dense fan-in / kept fan-in)``, so a pruned layer's output variance at initialisation
    is the dense layer's).

    PUN-WT: schedule (cubic | linear), start_fraction/end_fraction of the run between which
    density falls from 1 to the target, every (steps between pruning events).

    PUN-AT: rounds (density after round n is density^(n/rounds), i.e. (1-r)^n with
    r = 1 - density^(1/rounds)), finetune_steps per round, rewind (none | init).
    """

    method: str = "it"
    density: float = 0.03
    layers: list[str] = field(default_factory=lambda: ["*"])
    exempt: list[str] = field(default_factory=list)
    min_layer_density: float = 0.0
    temperature: float = 0.5
    temperature_final: float | None = None
    beta: float = 1e-3
    search_steps: int = 200
    search_lr: float = 0.1
    init_prob: float | None = None
    straight_through: bool = False
    init_scale: str = "none"
    log_every: int = 10
    schedule: str = "cubic"
    start_fraction: float = 0.1
    end_fraction: float = 0.7
    every: int = 10
    rounds: int = 3
    finetune_steps: int = 50
    rewind: str = "none"

    @property
    def method_name(self) -> str:
        """``pun-it`` / ``pun-wt`` / ``pun-at`` (as written in model cards)."""
        return METHOD_NAMES[self.method]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | PruneSettings) -> PruneSettings:
        """Settings from a dict (e.g. the TOML ``[prune]`` table); unknown keys -> ConfigError."""
        if isinstance(data, PruneSettings):
            return data.validate()
        if not isinstance(data, dict):
            raise ConfigError(f"[prune] must be a table, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown [prune] settings {unknown}; known: {', '.join(sorted(known))}"
            )
        values = dict(data)
        if values.get("method") in METHOD_NAMES.values():
            values["method"] = values["method"].removeprefix("pun-")
        for key in ("layers", "exempt"):
            if isinstance(values.get(key), str):
                values[key] = [v.strip() for v in values[key].split(",") if v.strip()]
        return cls(**values).validate()

    def validate(self) -> PruneSettings:
        """Check every value; raises ConfigError naming the setting. Returns self."""
        if self.method not in METHODS:
            raise ConfigError(
                f"unknown pruning method {self.method!r}; use one of {', '.join(METHODS)}"
            )
        self.density = check_density(self.density)
        if not isinstance(self.layers, list) or not self.layers:
            raise ConfigError(
                f"prune layers must be a non-empty list of names, got {self.layers!r}"
            )
        if not (
            isinstance(self.min_layer_density, int | float)
            and 0.0 <= self.min_layer_density <= self.density
        ):
            raise ConfigError(
                f"prune min_layer_density must be in [0, density = {self.density}], "
                f"got {self.min_layer_density!r}"
            )
        if not isinstance(self.exempt, list):
            raise ConfigError(f"prune exempt must be a list of names, got {self.exempt!r}")
        positive = {
            "temperature": self.temperature,
            "search_lr": self.search_lr,
        }
        if self.temperature_final is not None:
            positive["temperature_final"] = self.temperature_final
        for name, value in positive.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"prune {name} must be > 0, got {value!r}")
        if not (isinstance(self.beta, int | float) and math.isfinite(self.beta) and self.beta >= 0):
            raise ConfigError(f"prune beta must be >= 0, got {self.beta!r}")
        if self.init_prob is not None and not 0.0 < float(self.init_prob) < 1.0:
            raise ConfigError(f"prune init_prob must be in (0, 1), got {self.init_prob!r}")
        for name in ("search_steps", "log_every", "every", "rounds"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"prune {name} must be >= 1, got {getattr(self, name)!r}")
        if int(self.finetune_steps) < 0:
            raise ConfigError(f"prune finetune_steps must be >= 0, got {self.finetune_steps!r}")
        if self.init_scale not in INIT_SCALES:
            raise ConfigError(
                f"unknown prune init_scale {self.init_scale!r}; use one of {', '.join(INIT_SCALES)}"
            )
        if self.init_scale != "none" and self.method != "it":
            raise ConfigError(
                f"prune init_scale {self.init_scale!r} applies to PUN-IT (method it) only, "
                f"not {METHOD_NAMES.get(self.method, self.method)}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown prune schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}"
            )
        if not 0.0 <= self.start_fraction < self.end_fraction <= 1.0:
            raise ConfigError(
                "prune start_fraction and end_fraction need 0 <= start < end <= 1, got "
                f"{self.start_fraction} and {self.end_fraction}"
            )
        if self.rewind not in REWINDS:
            raise ConfigError(f"unknown rewind {self.rewind!r}; use one of {', '.join(REWINDS)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return dataclasses.asdict(self)
