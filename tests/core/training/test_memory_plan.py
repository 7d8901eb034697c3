"""Memory planning: ``bench plan --memory-budget`` and ``train --memory-budget``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_training import MASK, _write_cases

from mriviewer.benchmarks.plan import (
    fixed_costs,
    format_plan,
    parse_size,
    plan_memory,
    refusal,
)
from mriviewer.cli import main
from mriviewer.core.errors import ConfigError

MODEL = {"name": "modl", "features": 4, "depth": 3, "shared": False, "cg_iters": 2}
TINY = dict(size=16, coils=2, warmup=0, iterations=1)


@pytest.fixture(scope="module")
def plans():
    """One set of probes, planned against several budgets (memory is deterministic on CPU)."""
    plan = plan_memory(MODEL, 2**40, ["e2e", "gleam"], [1, 2, 4, 8, 16], **TINY)
    return plan


def _replan(plan, budget):
    """The same probes judged against another budget (no new measurement)."""
    from mriviewer.benchmarks import plan as planning

    probes = {(p.strategy, p.unrolls, p.modules): p for p in plan.probes}

    def fake(model_config, strategy, modules=None, **kwargs):
        p = probes[(strategy, model_config["num_unrolls"], modules)]
        return {"peak_memory_bytes": p.peak_bytes, "seconds_per_iteration": p.seconds}

    import mriviewer.benchmarks.train as bench

    real = bench.measure_strategy
    bench.measure_strategy = fake
    try:
        return planning.plan_memory(MODEL, budget, ["e2e", "gleam"], [1, 2, 4, 8, 16], **TINY)
    finally:
        bench.measure_strategy = real


def _peak(plan, strategy, n):
    return next(r.peak_bytes for r in plan.rows if r.strategy == strategy and r.unrolls == n)


def test_parse_size():
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5G") == int(1.5 * 2**30)
    assert parse_size("800MB") == 800 * 10**6
    assert parse_size(" 64 k ") == 64 * 1024
    assert parse_size("1000") == 1000
    for bad in ("", "lots", "2 parsecs", "-1G", "1.2.3G", "0"):
        with pytest.raises(ConfigError) as info:
            parse_size(bad)
        assert "\n" not in str(info.value) and "bad memory size" in str(info.value)
    with pytest.raises(ConfigError, match=r"^bad memory size 'lots': use a number and a unit"):
        parse_size("lots")


def test_probes_are_measured_and_the_rest_extrapolated(plans):
    rows = {(r.strategy, r.unrolls): r for r in plans.rows}
    assert [rows[("e2e", n)].source for n in (1, 2, 4, 8, 16)] == ["measured"] * 3 + [
        "extrapolated"
    ] * 2
    # e2e grows with N much faster than GLEAM at one unroll per module
    assert _peak(plans, "e2e", 16) > _peak(plans, "e2e", 1)
    assert plans.fit_residual < 0.05  # memory is linear in N
    fixed = fixed_costs(MODEL | {"num_unrolls": 1}, (1, 2, 16, 16))
    assert fixed["kspace"] == fixed["coil_maps"] == 2 * 16 * 16 * 8
    assert fixed["per_unroll_adam_state"] == 2 * fixed["per_unroll_parameters"] > 0
    text = format_plan(plans)
    assert "fixed costs" in text and "CG temporaries" in text and "extrapolated" in text
    assert "choice: " in text and "device cpu" in text


def test_a_tiny_budget_picks_a_small_n_and_a_larger_budget_a_larger_n(plans):
    small_budget = _peak(plans, "e2e", 2) + 1
    small = _replan(plans, small_budget)
    assert small.choices["e2e"].unrolls == 2
    assert small.choice.strategy == "gleam" and small.choice.unrolls > 2  # GLEAM goes deeper
    g = small.choice
    assert g.unrolls % g.modules == 0 and g.peak_bytes <= small_budget
    large = _replan(plans, _peak(plans, "e2e", 8) + 1)
    assert large.choices["e2e"].unrolls == 8
    assert large.choices["gleam"].unrolls == 16
    # with room to spare GLEAM uses fewer, longer modules (smallest M that fits)
    assert large.choices["gleam"].modules < 16


def test_an_impossible_budget_is_refused_with_one_line(plans):
    plan = _replan(plans, 1000)
    smallest = min(p.peak_bytes for p in plans.probes)
    assert plan.choice is None
    from mriviewer.benchmarks.plan import format_size

    assert refusal(plan) == (
        "memory budget 1000 B is too small on cpu: not even one unroll fits (smallest "
        f"measured peak: e2e N=1 needs {format_size(smallest)})"
    )


def test_bench_plan_command(tmp_path, capsys):
    out = tmp_path / "plan.json"
    argv = ["bench", "plan", "--memory-budget", "64MiB", "--features", "4", "--size", "16"]
    argv += ["--coils", "2", "--cg-iters", "2", "--unrolls", "1,2,4,8", "--warmup", "0"]
    argv += ["--strategies", "e2e,gleam", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "budget 64 MiB" in printed and "choice: " in printed and " N=8" in printed
    assert "measured" in printed and "extrapolated" in printed
    assert json.loads(out.read_text())["chosen"]["unrolls"] == 8
    assert main(argv[:3] + ["lots"] + argv[4:]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad memory size 'lots'" in err
    assert main(argv[:3] + ["10KiB"] + argv[4:-2]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "memory budget 10 KiB is too small on cpu: not even one unroll fits" in err


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plandata")
    _write_cases(root / "train", [0], slices=1)
    return root


def _toml(tmp_path: Path, data: Path, strategy: str) -> Path:
    toml = tmp_path / "train.toml"
    toml.write_text(
        f"""
strategy = "{strategy}"
train_dir = "{data / "train"}"
accelerations = [4.0]
steps = 1
output = "out"
coil_method = "lowres"
device = "cpu"

[model]
name = "pgd"
num_unrolls = 2
features = 4
blocks = 1

[mask]
kind = "{MASK["kind"]}"
center_fraction = {MASK["center_fraction"]}
"""
    )
    return toml


def test_train_memory_budget_sets_unrolls_and_records_the_choice(data, tmp_path, capsys):
    toml = _toml(tmp_path, data, "gleam")
    argv = ["train", "--config", str(toml), "--no-progress", "--threads", "1"]
    assert main(argv + ["--memory-budget", "1.5MiB"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("memory budget: chose gleam N=") and "of the 1.5 MiB budget" in first
    n = int(first.split("N=")[1].split()[0])
    assert n != 2 and f"training pgd N={n}" in out
    card = json.loads((tmp_path / "out" / "model.json").read_text())
    plan = card["extra"]["memory_plan"]
    assert plan["budget_bytes"] == int(1.5 * 2**20) and plan["device"] == "cpu"
    assert plan["chosen"]["unrolls"] == n == card["strategy"]["unrolls"]
    assert plan["chosen"]["modules"] == card["strategy"]["modules"]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model"]["num_unrolls"] == n and config["memory_plan"]["chosen"]["unrolls"] == n
    # bench plan on the same config: its model and its largest training slice
    argv_plan = ["bench", "plan", "--memory-budget", "1.5MiB", "--config", str(toml)]
    argv_plan += ["--unrolls", "1,2,4", "--warmup", "0", "--strategies", "e2e,gleam"]
    assert main(argv_plan) == 0
    printed = capsys.readouterr().out
    assert "bench plan: pgd" in printed and "batch 1 x 4 coils x 32 x 32" in printed
    # refusals: one line each
    toml2 = _toml(tmp_path, data, "e2e")
    assert (
        main(
            ["train", "--config", str(toml2), "--output", str(tmp_path / "o2")]
            + ["--memory-budget", "1KiB", "--no-progress"]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "memory budget 1 KiB is too small on cpu" in err
    assert "smallest measured peak: e2e N=1 needs" in err
    assert main(argv + ["--memory-budget", "2 parsecs"]) == 1
    assert "bad memory size '2 parsecs'" in capsys.readouterr().err
    assert main(argv + ["--memory-budget", "1GiB", "--unrolls", "4"]) == 1
    assert "drop --unrolls" in capsys.readouterr().err
