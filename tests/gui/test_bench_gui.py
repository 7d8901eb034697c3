"""``mriviewer bench gui`` prints event-loop lateness per phase (no timing assertions)."""

from __future__ import annotations

import argparse
import json
import re

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
    assert "(4 coils, 48x48)" in out  # the 2-D description is unchanged
    assert "cine playback" not in out  # no playback on a 2-D file


def test_bench_gui_on_demo_cine_reports_the_shape_and_playback(qapp, capsys, tmp_path):
    out_json = tmp_path / "bench.json"
    args = argparse.Namespace(
        file="demo-cine",
        method="zero-filled,cg-sense",
        max_iter=3,
        accel=4.0,
        device="cpu",
        idle_ms=100,
        size="800x600",
        fps=10.0,
        play_seconds=0.5,
        json=str(out_json),
    )
    assert run_bench(args) == 0
    out = capsys.readouterr().out
    assert "(cine: 12 frames, 4 coils, 64 x 64)" in out
    assert "cg-sense 3 it" in out  # --max-iter: batched CG steps over the 12 frames
    row = next(line for line in out.splitlines() if line.startswith("cine playback (10 fps)"))
    assert int(row.split()[4]) > 0  # lateness ticks during playback
    frames = re.search(r"cine playback: (\d+) frames in .* frames/s shown of 10 requested", out)
    assert frames and int(frames.group(1)) > 0
    assert "frame slider -> 3 panes repainted: median" in out  # reference + 2 methods
    result = json.loads(out_json.read_text())
    assert result["shape"] == {"frames": 12, "coils": 4, "height": 64, "width": 64}
    pb = result["playback"]
    assert pb["fps_requested"] == 10.0 and pb["frames_shown"] > 0 and pb["fps_achieved"] > 0
    assert pb["lateness"]["ticks"] > 0 and "max_ms" in pb["lateness"]
    assert pb["slider"]["moves"] == 12
    assert "cine playback (10 fps)" in result["phases"]
