"""``mriviewer bench gui`` prints event-loop lateness per phase (no timing assertions)."""

from __future__ import annotations

import argparse

import pytest

from mriviewer.commands.bench_gui import lateness_stats, run_bench

pytestmark = pytest.mark.gui


def test_lateness_stats():
    st = lateness_stats([0.0, 10.0, 2.0, 100.0])
    assert st["ticks"] == 4 and st["max_ms"] == 100.0 and st["mean_ms"] == 28.0
    assert lateness_stats([])["ticks"] == 0


def test_bench_gui_prints_table(qapp, case_file, capsys):
    args = argparse.Namespace(
        file=str(case_file), method="cg-sense", max_iter=3, accel=4.0, device="cpu", idle_ms=200
    )
    assert run_bench(args) == 0
    out = capsys.readouterr().out
    assert "idle (baseline)" in out and "cg-sense iterations" in out
    assert "UI event-loop lateness during the run" in out and "target max < 50 ms" in out
