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
    rows = result["neighbour"]
    assert [r["work"] for r in rows] == ["CG-SENSE 10 its", "MoDL pass", "training step"]
    assert all(r["quiet_seconds"] > 0 and r["loaded_seconds"] > 0 for r in rows)
    assert "busy neighbour: training step" in text


def test_bench_recon_rejects_unknown_stage(capsys):
    assert main(["bench", "recon", "--case", "tiny", "--stages", "nope"]) == 1
    assert "unknown stage" in capsys.readouterr().err


def test_openmp_threads_spin_briefly_then_sleep():
    """mriviewer sets OMP_WAIT_POLICY=PASSIVE and a short GOMP_SPINCOUNT before torch loads; an
    explicit value of either is kept (and an explicit policy gets no spin count)."""
    import os
    import subprocess
    import sys

    code = (
        "import os, mriviewer, torch; "
        "print(os.environ['OMP_WAIT_POLICY'], os.environ.get('GOMP_SPINCOUNT', '-'))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}

    def run(**extra: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env | extra, capture_output=True, text=True
        )
        return out.stdout.strip()

    assert run() == "PASSIVE 1000"
    assert run(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE -"
    assert run(GOMP_SPINCOUNT="0") == "PASSIVE 0"


def test_own_running_counts_this_process_threads():
    import os

    from mriviewer.core import threads

    assert 1 <= threads.own_running() <= len(os.listdir("/proc/self/task"))


def test_thread_governor_follows_the_free_cores(monkeypatch):
    """The governor re-picks at most every interval_s and sets torch's thread count; a fixed
    count (MRIVIEWER_THREADS, OMP_NUM_THREADS, enabled=False) turns it off."""
    import torch

    from mriviewer.core import threads

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    free = [2, 1, 1, 2]
    calls = []

    def pick(reserve=0, samples=9):
        calls.append((reserve, samples))
        return free[len(calls) - 1]

    monkeypatch.setattr(threads, "pick_threads", pick)
    before = torch.get_num_threads()
    clock = [100.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    try:
        governor = threads.ThreadGovernor(interval_s=2.0)
        assert governor.update() == 2 and torch.get_num_threads() == 2
        clock[0] += 1.0
        assert governor.update() == 2 and len(calls) == 1  # within the interval: no sampling
        clock[0] += 1.5
        assert governor.update() == 1 and torch.get_num_threads() == 1  # a neighbour came
        clock[0] += 2.5
        assert governor.update() == 1
        clock[0] += 2.5
        assert governor.update() == 2 and torch.get_num_threads() == 2  # it left
        assert calls == [(0, 3)] * 4
        assert governor.changes == (before != 2) + 2
        monkeypatch.setenv(threads.THREADS_ENV, "1")
        assert not threads.ThreadGovernor().enabled
        monkeypatch.delenv(threads.THREADS_ENV)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert not threads.ThreadGovernor().enabled
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert not threads.ThreadGovernor(enabled=False).enabled
    finally:
        torch.set_num_threads(before)


def test_pick_threads_bounds_and_override(monkeypatch):
    from mriviewer.core import threads

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    n = threads.pick_threads()
    assert 1 <= n <= threads.available_cores()
    assert threads.pick_threads(reserve=99) == 1
    monkeypatch.setattr(threads, "other_running", lambda samples=9: 0)
    assert threads.pick_threads() == threads.available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's OpenMP setting fixes it too
    assert threads.pick_threads() == threads.pick_threads(reserve=1) == 2
    monkeypatch.setenv(threads.THREADS_ENV, "3")  # mriviewer's own variable wins
    assert threads.pick_threads() == 3
