"""Memory planning: the deepest unrolled network a memory budget allows (``bench plan``,
``train --memory-budget``).

For each strategy, a few probe steps of the configured model are measured at the smallest
requested unroll counts with :func:`mriviewer.benchmarks.train.measure_strategy` (the one memory
meter: CUDA's allocator peak, or the CPU live-tensor bytes that ``bench train`` reports), and
peak memory and seconds per step are extrapolated linearly in N to the larger counts:

- e2e and checkpoint: ``peak = a + b N`` (activations of every unroll, or of the checkpointed
  unroll inputs, plus parameters, gradients and Adam state: all linear in N);
- GLEAM with M modules: ``peak = a + b N + c N / M`` (parameters and Adam state of all N unrolls,
  activations of the N / M unrolls of one module); probed at M = N and, to separate ``c``, once
  at M = 1 for the largest probed N.

Each row says whether it was measured or extrapolated. For GLEAM the plan takes, at each N, the
smallest M (N % M == 0) whose predicted peak fits; M = N (one unroll per module) is the least
memory GLEAM can use at that N.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from mriviewer.core.errors import ConfigError

DEFAULT_UNROLLS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)
PLAN_STRATEGIES = ("e2e", "checkpoint", "gleam")
PROBES = 3  # unroll counts measured per strategy (the smallest requested); the rest extrapolated

_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kib": 2**10,
    "kb": 10**3,
    "m": 2**20,
    "mib": 2**20,
    "mb": 10**6,
    "g": 2**30,
    "gib": 2**30,
    "gb": 10**9,
    "t": 2**40,
    "tib": 2**40,
    "tb": 10**12,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes of a memory size such as ``2GiB``, ``512MiB``, ``1.5G`` or ``800MB``.

    K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000; a bare number
    is bytes. Raises ConfigError (one line) for anything else or a size that is not positive.
    """
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(
            f"bad memory size {text!r}: use a number and a unit, e.g. 2GiB, 512MiB, 1.5G or 800MB"
        )
    value = float(match.group(1)) * _UNITS[unit]
    if not value >= 1:
        raise ConfigError(f"bad memory size {text!r}: it must be at least 1 byte")
    return int(value)


def format_size(n: float) -> str:
    """``n`` bytes as KiB / MiB / GiB with 3 significant figures."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


def parse_unrolls(text: str) -> list[int]:
    """``"2,4,8"`` -> ``[2, 4, 8]`` (sorted, distinct, each >= 1); ConfigError otherwise."""
    try:
        values = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise ConfigError(f"bad unroll counts {text!r}: use positive integers like 2,4,8")
    return values


@dataclass
class PlanRow:
    """One strategy at one unroll count: predicted (or measured) peak memory and s/step."""

    strategy: str
    unrolls: int
    modules: int | None
    peak_bytes: int
    seconds: float
    source: str  # "measured" | "extrapolated"
    fits: bool = False


@dataclass
class Plan:
    """What ``bench plan`` prints and ``train --memory-budget`` applies."""

    budget_bytes: int
    device: str
    method: str
    batch_shape: tuple[int, ...]
    model: dict[str, Any]
    rows: list[PlanRow] = field(default_factory=list)
    probes: list[PlanRow] = field(default_factory=list)
    fixed: dict[str, int] = field(default_factory=dict)
    choices: dict[str, PlanRow] = field(default_factory=dict)
    choice: PlanRow | None = None
    fit_residual: float = 0.0  # largest relative error of the linear fit on the probes
    #: per strategy, the fitted peak bytes ``[a, b(, c)]`` of ``a + b N (+ c N / M)``
    coefficients: dict[str, list[float]] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """JSON-ready summary for the run's config.json and model card."""
        chosen = asdict(self.choice) if self.choice else None
        return {
            "budget_bytes": self.budget_bytes,
            "budget": format_size(self.budget_bytes),
            "device": self.device,
            "memory_method": self.method,
            "batch_shape": list(self.batch_shape),
            "chosen": chosen,
            "measured_unrolls": sorted({p.unrolls for p in self.probes}),
        }

    def to_dict(self) -> dict[str, Any]:
        return self.record() | {
            "model": self.model,
            "rows": [asdict(r) for r in self.rows],
            "probes": [asdict(p) for p in self.probes],
            "fixed_costs_bytes": self.fixed,
            "choices": {k: asdict(v) for k, v in self.choices.items()},
            "fit_residual": self.fit_residual,
            "coefficients_bytes": self.coefficients,
        }


def fixed_costs(
    model_config: dict[str, Any], batch_shape: tuple[int, int, int, int]
) -> dict[str, int]:
    """Bytes that do not grow with activations, computed from the model and the data shapes.

    ``per_unroll_*``: parameters, their gradients and Adam's two moments for ONE unroll (times N
    for every strategy's Adam state; GLEAM holds gradients of one module at a time only while it
    steps). The rest is held once per step: k-space and coil maps (complex64, B x C x H x W),
    the mask (bool, and the operator's float copy), target and ``A^H y`` (complex64 images) and,
    for MoDL, CG's working images (x, r, p, A p, rhs) plus the normal operator's two coil-sized
    temporaries (coil images and their FFT).
    """
    from mriviewer.core.models import build_model

    b, c, h, w = (int(v) for v in batch_shape)
    one = build_model(dict(model_config) | {"num_unrolls": 1})
    params = sum(p.numel() * p.element_size() for p in one.parameters())
    image = b * h * w * 8
    coil = b * c * h * w * 8
    out = {
        "per_unroll_parameters": params,
        "per_unroll_gradients": params,
        "per_unroll_adam_state": 2 * params,
        "kspace": coil,
        "coil_maps": coil,
        "mask": b * h * w * (1 + 4),
        "target_and_aty": 2 * image,
    }
    if model_config.get("name") == "modl":
        out["cg_temporaries"] = 5 * image + 2 * coil
    else:
        out["gradient_step_temporaries"] = 2 * image + 2 * coil
    return out


def _design(strategy: str, n: int, m: int | None) -> list[float]:
    if strategy == "gleam":
        return [1.0, float(n), float(n // (m or n))]
    return [1.0, float(n)]


def _fit(rows: list[PlanRow], strategy: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares coefficients of peak and seconds on the strategy's design; max rel. error."""
    x = np.array([_design(strategy, r.unrolls, r.modules) for r in rows])
    peak = np.array([r.peak_bytes for r in rows], dtype=float)
    secs = np.array([r.seconds for r in rows], dtype=float)
    cp = np.linalg.lstsq(x, peak, rcond=None)[0]
    ct = np.linalg.lstsq(x, secs, rcond=None)[0]
    residual = float(np.max(np.abs(x @ cp - peak) / peak)) if len(rows) > x.shape[1] else 0.0
    return cp, ct, residual


def _divisors(n: int) -> list[int]:
    return [m for m in range(1, n + 1) if n % m == 0]


def plan_memory(
    model_config: dict[str, Any],
    budget_bytes: int,
    strategies: list[str] | tuple[str, ...] = PLAN_STRATEGIES,
    unrolls: list[int] | tuple[int, ...] = DEFAULT_UNROLLS,
    batch=None,
    *,
    size: int = 160,
    coils: int = 8,
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 1,
    iterations: int = 1,
    measure_all: bool = False,
    lr: float = 1e-4,
    seed: int = 0,
    on_probe: Callable[[PlanRow], None] | None = None,
    frames: int = 0,
) -> Plan:
    """Measure probes, extrapolate, and choose the largest N (and GLEAM's M) within the budget.

    batch: a :class:`~mriviewer.core.training.data.Batch` to probe with (a real training slice);
    default a synthetic ``size`` x ``size`` phantom with ``coils`` coils (``frames`` > 0: one
    synthetic cine series of that many frames, for a cine model). Probes are the
    :data:`PROBES` smallest requested N (every N with ``measure_all``).
    """
    from mriviewer.benchmarks.train import MEMORY_METHODS, measure_strategy, synthetic_batch

    strategies = list(strategies)
    bad = [s for s in strategies if s not in PLAN_STRATEGIES]
    if bad or not strategies:
        raise ConfigError(
            f"memory planning covers {', '.join(PLAN_STRATEGIES)} in one process; got {bad or '-'}"
        )
    unrolls = sorted({int(n) for n in unrolls})
    if not unrolls or unrolls[0] < 1:
        raise ConfigError(f"unroll counts must be >= 1, got {unrolls}")
    if batch is None:
        batch = synthetic_batch(size, coils, batch_size, seed, frames)
    shape = tuple(batch.kspace.shape)
    cuda = device.startswith("cuda")
    plan = Plan(
        budget_bytes=int(budget_bytes),
        device=device,
        method=MEMORY_METHODS["cuda" if cuda else "tensors"],
        batch_shape=shape,
        model={k: v for k, v in model_config.items() if k != "num_unrolls"},
        fixed=fixed_costs(model_config, shape),  # type: ignore[arg-type]
    )
    probe_ns = unrolls if measure_all else unrolls[:PROBES]
    if len(probe_ns) == 1 and len(unrolls) > 1:
        probe_ns = unrolls[:2]

    def probe(strategy: str, n: int, m: int | None) -> PlanRow:
        r = measure_strategy(
            dict(model_config) | {"num_unrolls": n},
            strategy,
            modules=m,
            device=device,
            warmup=warmup,
            iterations=iterations,
            lr=lr,
            seed=seed,
            batch=batch,
        )
        row = PlanRow(
            strategy, n, m, r["peak_memory_bytes"], r["seconds_per_iteration"], "measured"
        )
        plan.probes.append(row)
        if on_probe is not None:
            on_probe(row)
        return row

    residual = 0.0
    for strategy in strategies:
        measured = {}
        for n in probe_ns:
            m = n if strategy == "gleam" else None
            measured[(n, m)] = probe(strategy, n, m)
        if strategy == "gleam" and max(probe_ns) > 1:
            n = max(probe_ns)
            measured[(n, 1)] = probe(strategy, n, 1)
        fitted = list(measured.values())
        cp, ct, res = _fit(fitted, strategy)
        residual = max(residual, res)
        plan.coefficients[strategy] = [float(v) for v in cp]

        def predict(n: int, m: int | None, cp=cp, ct=ct, measured=measured, strategy=strategy):
            if (n, m) in measured:
                return measured[(n, m)]
            d = np.array(_design(strategy, n, m))
            return PlanRow(
                strategy, n, m, int(max(d @ cp, 0)), float(max(d @ ct, 0.0)), "extrapolated"
            )

        for n in unrolls:
            if strategy == "gleam":
                candidates = [predict(n, m) for m in _divisors(n)]
                fitting = [r for r in candidates if r.peak_bytes <= budget_bytes]
                row = fitting[0] if fitting else predict(n, n)
                if row.modules != n:  # also show GLEAM's least memory (one unroll per module)
                    least = predict(n, n)
                    least.fits = least.peak_bytes <= budget_bytes
                    plan.rows.append(least)
            else:
                row = predict(n, None)
            row.fits = row.peak_bytes <= budget_bytes
            plan.rows.append(row)
            if row.fits:
                plan.choices[strategy] = row
    plan.fit_residual = residual
    if plan.choices:
        # the deepest network; among equally deep ones the fastest step
        plan.choice = max(plan.choices.values(), key=lambda r: (r.unrolls, -r.seconds))
    return plan


def refusal(plan: Plan) -> str:
    """The one-line message when nothing fits: names the smallest measured peak."""
    smallest = min(plan.probes, key=lambda r: r.peak_bytes)
    n = min(r.unrolls for r in plan.rows)
    what = "one unroll fits" if n == 1 else f"{n} unrolls fit"
    return (
        f"memory budget {format_size(plan.budget_bytes)} is too small on {plan.device}: not even "
        f"{what} (smallest measured peak: {_label(smallest)} needs "
        f"{format_size(smallest.peak_bytes)})"
    )


def _label(row: PlanRow) -> str:
    m = f" M={row.modules}" if row.strategy == "gleam" else ""
    return f"{row.strategy} N={row.unrolls}{m}"


def choice_line(plan: Plan) -> str:
    """``choice: gleam N=32 M=32: 1.2 GiB of the 2 GiB budget, 3.1 s/step (extrapolated), cpu``."""
    c = plan.choice
    if c is None:
        return refusal(plan)
    return (
        f"choice: {_label(c)}: {format_size(c.peak_bytes)} of the "
        f"{format_size(plan.budget_bytes)} budget, {c.seconds:.3g} s/step ({c.source}), "
        f"device {plan.device}"
        + (" (the largest N considered)" if c.unrolls == max(r.unrolls for r in plan.rows) else "")
    )


def format_plan(plan: Plan) -> str:
    """The printed report: fixed costs, the N x strategy table, per-strategy limits, the choice."""
    f = plan.fixed
    b, c, h, w = plan.batch_shape
    what = f"one cine series of {b} frames" if plan.model.get("denoiser", "2d") != "2d" else b
    lines = [f"fixed costs (computed from the model and the batch {what} x {c} coils x {h} x {w}):"]
    lines.append(
        f"  per unroll: parameters {format_size(f['per_unroll_parameters'])}, gradients "
        f"{format_size(f['per_unroll_gradients'])}, Adam state {format_size(f['per_unroll_adam_state'])}"
        " (x N for every strategy)"
    )
    temp_key = "cg_temporaries" if "cg_temporaries" in f else "gradient_step_temporaries"
    temp_name = (
        "CG temporaries (5 images + 2 coil-sized)"
        if temp_key == "cg_temporaries"
        else "gradient-step temporaries (2 images + 2 coil-sized)"
    )
    once = f["kspace"] + f["coil_maps"] + f["mask"] + f["target_and_aty"] + f[temp_key]
    lines.append(
        f"  per step: k-space {format_size(f['kspace'])}, coil maps {format_size(f['coil_maps'])}, "
        f"mask {format_size(f['mask'])}, target + A^H y {format_size(f['target_and_aty'])}, "
        f"{temp_name} {format_size(f[temp_key])}: {format_size(once)}"
    )
    lines.append(
        f"{'N':>4}  {'strategy':<11}{'M':>4} {'peak memory':>12} {'s/step':>9}  fits  source"
    )
    for r in plan.rows:
        m = str(r.modules) if r.strategy == "gleam" else "-"
        lines.append(
            f"{r.unrolls:>4}  {r.strategy:<11}{m:>4} {format_size(r.peak_bytes):>12} "
            f"{r.seconds:>9.3g}  {'yes' if r.fits else 'no ':<4}  {r.source}"
        )
    measured = sorted({p.unrolls for p in plan.probes})
    lines.append(
        f"measured at N = {', '.join(map(str, measured))} (GLEAM also at M = 1); other rows "
        f"extrapolated linearly in N (and N/M); largest fit error on the probes "
        f"{100 * plan.fit_residual:.1f}%"
    )
    lines.append(f"memory: {plan.method}")
    for strategy, coef in plan.coefficients.items():
        fit = f"{format_size(coef[0])} + {format_size(coef[1])} x N"
        if len(coef) > 2:
            fit += f" + {format_size(coef[2])} x N/M"
        lines.append(f"fit: {strategy} peak = {fit}")
    lines.append(
        "  (the constant is the batch, CG temporaries and the backward pass's working buffers; "
        "the N and N/M terms are parameters + Adam state and the activations kept for backward)"
    )
    ratio = _gleam_ratio(plan)
    if ratio:
        lines.append(ratio)
    for row in plan.choices.values():
        lines.append(
            f"largest N within {format_size(plan.budget_bytes)}: {_label(row)} "
            f"({format_size(row.peak_bytes)}, {row.seconds:.3g} s/step)"
        )
    lines.append(choice_line(plan))
    return "\n".join(lines)


def _gleam_ratio(plan: Plan) -> str:
    """``GLEAM M = N vs e2e at N = 8: 5.59x less memory, 0.92x the time`` (largest common N)."""
    e2e = {r.unrolls: r for r in plan.rows if r.strategy == "e2e"}
    gleam = {r.unrolls: r for r in plan.rows if r.strategy == "gleam" and r.modules == r.unrolls}
    common = sorted(set(e2e) & set(gleam) - {1})
    if not common:
        return ""
    n = 8 if 8 in common else common[-1]
    e, g = e2e[n], gleam[n]
    return (
        f"GLEAM M = N vs e2e at N = {n}: {e.peak_bytes / g.peak_bytes:.2f}x less memory, "
        f"{g.seconds / e.seconds:.2f}x the time ({e.source} / {g.source})"
    )


def probe_batch(train_data, batch_size: int, seed: int = 0):
    """A batch of the training set's largest slice (after crops and coil compression)."""
    from mriviewer.core.training.data import collate

    sizes = []
    for i in range(len(train_data)):
        ref = train_data.slices[i]
        sizes.append((int(np.prod(ref.shape)), -i))
    i = -max(sizes)[1]
    sample = train_data.sample(i, seed)
    return collate([sample] * int(batch_size))


def device_name(device: str) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA ...)`` for the printed lines."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def plan_for_config(
    config,
    budget_bytes: int,
    unrolls: list[int] | tuple[int, ...] = DEFAULT_UNROLLS,
    warmup: int = 1,
    iterations: int = 1,
) -> tuple[Any, Plan]:
    """``train --memory-budget``: plan the config's strategy on its own model, device and
    largest training slice; returns ``(config with N and M set, plan)``.

    Raises ConfigError with :func:`refusal`'s one line when not even the smallest N fits.
    """
    import dataclasses

    from mriviewer.core.device import resolve_device
    from mriviewer.core.training.trainer import make_dataset

    if config.strategy not in PLAN_STRATEGIES:
        raise ConfigError(
            f"--memory-budget plans {', '.join(PLAN_STRATEGIES)} in one process, not "
            f"{config.strategy}"
        )
    if config.threads is not None:
        torch.set_num_threads(int(config.threads))
    device = resolve_device(config.device)
    data = make_dataset(config, train=True)  # cine files too (dynamic = true)
    batch = probe_batch(data, config.batch_size, config.seed)
    plan = plan_memory(
        dict(config.model),
        budget_bytes,
        [config.strategy],
        unrolls,
        batch,
        device=str(device),
        warmup=warmup,
        iterations=iterations,
        lr=config.lr,
        seed=config.seed,
    )
    if plan.choice is None:
        raise ConfigError(refusal(plan))
    c = plan.choice
    model = dict(config.model) | {"num_unrolls": c.unrolls}
    chosen = dataclasses.replace(
        config, model=model, modules=c.modules if config.strategy == "gleam" else config.modules
    )
    return chosen.validate(), plan
