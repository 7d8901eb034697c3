"""``mriviewer bench recon`` runs on a tiny case and prints its table (no timing asserts)."""

import json

from mriviewer.cli import main


def test_bench_recon_tiny_prints_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "recon", "--case", "tiny", "--repeats", "1", "--before", "--neighbour"]
    assert main(argv + ["--compare", "sigpy", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for label in ("case tiny", "2-D FFT", "coil maps", "CG iteration", "l1 iteration"):
        assert label in text
    for label in ("MoDL pass", "training step", "busy neighbour", "sigpy/ours", "speed-up"):
        assert label in text
    result = json.loads(out.read_text())[0]
    assert set(result["stages"]) == {"maps", "cg", "l1", "modl", "train"}
    assert all(row["seconds"] > 0 for row in result["stages"].values())
    assert result["stages"]["cg"]["sigpy_seconds"] > 0
    assert len(result["neighbour"]) == 2


def test_bench_recon_rejects_unknown_stage(capsys):
    assert main(["bench", "recon", "--case", "tiny", "--stages", "nope"]) == 1
    assert "unknown stage" in capsys.readouterr().err


def test_openmp_threads_sleep_when_idle():
    """mriviewer sets OMP_WAIT_POLICY=PASSIVE before torch loads; an explicit value is kept."""
    import os
    import subprocess
    import sys

    code = "import os, mriviewer, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ACTIVE"


def test_pick_threads_bounds_and_override(monkeypatch):
    from mriviewer.core import threads

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    n = threads.pick_threads()
    assert 1 <= n <= threads.available_cores()
    assert threads.pick_threads(reserve=99) == 1
    monkeypatch.setattr(threads, "other_running", lambda: 0)
    assert threads.pick_threads() == threads.available_cores()
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.pick_threads() == 3
