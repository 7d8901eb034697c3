"""P-GLEAM and data-parallel training under torchrun (2 gloo processes on 127.0.0.1, tiny sizes).

Each torchrun launch costs several seconds of process start-up, so the end-to-end tests are few
and each checks several things.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mriviewer.benchmarks.pgleam import format_throughput
from mriviewer.cli import main
from mriviewer.core.checkpoints import load_model
from mriviewer.core.errors import ConfigError
from mriviewer.core.io import write_fastmri
from mriviewer.core.training import load_config, train
from mriviewer.core.training.distributed import launched_with_torchrun, shard_positions
from mriviewer.core.training.pgleam import rank_modules
from tests.conftest import phantom_case

SIZE = 32
COMMON = {
    "model.name": "modl",
    "model.features": 4,
    "coil_method": "lowres",
    "mask.kind": "random",
    "mask.center_fraction": 0.16,
    "device": "cpu",
    "progress": False,
    "seed": 3,
}
FLAGS = {
    "model.name": "--model",
    "model.num_unrolls": "--unrolls",
    "model.features": "--features",
    "coil_method": "--coil-method",
    "mask.kind": "--mask",
    "mask.center_fraction": "--center-fraction",
    "device": "--device",
    "seed": "--seed",
    "strategy": "--strategy",
    "modules": "--modules",
    "steps": "--steps",
    "batch_size": "--batch-size",
    "checkpoint_every": "--checkpoint-every",
    "train_dir": "--train",
    "output": "--output",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    for s in (0, 1):
        ks = np.stack([phantom_case(SIZE, SIZE, coils=4, seed=10 * s + j)[0] for j in range(2)])
        write_fastmri(root / "train" / f"case{s}.h5", ks)
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(settings: dict, *extra: str, env: dict | None = None, timeout: float = 240):
    """``python -m torch.distributed.run --nproc-per-node 2 -m mriviewer train ...``."""
    args = []
    for key, value in settings.items():
        if key == "progress":
            args.append("--no-progress")
        else:
            args += [FLAGS[key], str(value)]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "-m",
        "mriviewer",
        "train",
        *args,
        *extra,
    ]
    full_env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )
    return proc, time.monotonic() - started


def _errors(proc) -> str:
    lines = (proc.stdout + proc.stderr).splitlines()
    return "\n".join(line for line in lines if "error" in line.lower())[-3000:]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _assert_same_weights(a: dict, b: dict, atol: float = 2e-5) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-4, msg=key)


def _steps(folder: Path) -> list[int]:
    lines = (folder / "log.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def test_shard_positions_split_the_global_batch_like_distributed_sampler():
    assert shard_positions(5, 0, 2) == ([0, 2, 4], 0.6)
    assert shard_positions(5, 1, 2) == ([1, 3], 0.4)
    # a rank without a sample repeats one with weight 0 (every rank takes part in each step)
    assert shard_positions(1, 1, 2) == ([0], 0.0)
    assert launched_with_torchrun({"RANK": "0", "WORLD_SIZE": "2"})
    assert not launched_with_torchrun({})


def test_modules_split_into_contiguous_blocks_and_refuse_uneven_splits():
    assert [rank_modules(8, 4, r) for r in range(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ConfigError, match=r"M=6 GLEAM modules .* divisible by the number of "):
        rank_modules(6, 4, 0)


def test_pgleam_without_torchrun_says_how_to_launch(data, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    code = main(["train", "--train", str(data / "train"), "--steps", "1", "--strategy", "pgleam"])
    err = capsys.readouterr().err
    assert code == 1
    assert "launch it with torchrun" in err and "--nproc-per-node 2" in err


def test_throughput_table_compares_against_gleam():
    table = format_throughput(
        {
            "strategies": {
                "gleam": {"processes": 1, "threads": 2, "steps_per_second": 2.0},
                "pgleam": {"processes": 2, "threads": 1, "steps_per_second": 3.2},
            }
        }
    )
    assert "pgleam" in table.splitlines()[2] and table.splitlines()[2].endswith("1.60x")


def test_pgleam_fails_cleanly_resumes_and_equals_gleam(data, tmp_path):
    """A rank raising at step 3 ends the job within the timeout with its message; --resume from
    the step-2 checkpoint finishes, and the weights equal single-process GLEAM's."""
    settings = COMMON | {
        "model.num_unrolls": 4,
        "modules": 4,
        "steps": 4,
        "batch_size": 2,
        "checkpoint_every": 2,
        "train_dir": str(data / "train"),
    }
    out = tmp_path / "pgleam"
    timeout = 30
    proc, elapsed = _torchrun(
        settings | {"strategy": "pgleam", "output": out},
        "--dist-timeout",
        str(timeout),
        env={"MRIVIEWER_TEST_FAIL": "1:3"},
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "rank 1 of 2, step 3: failed: injected failure" in text
    assert "--resume" in text
    assert "mriviewer: error: rank 0 of 2" in text  # the other rank says why it stopped too
    assert elapsed < timeout + 60  # start-up of two interpreters, well inside the limit
    assert json.loads((out / "last.pgleam.json").read_text())["step"] == 2
    assert not (out / "model.safetensors").exists()

    proc, _ = _torchrun(settings | {"strategy": "pgleam", "output": out}, "--resume")
    assert proc.returncode == 0, _errors(proc)
    assert "P-GLEAM M=4 over 2 processes (2 modules each)" in proc.stdout
    assert "done: 4 steps" in proc.stdout
    assert _steps(out) == [1, 2, 3, 4]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(len(r["module_losses"]) == 4 and r["world_size"] == 2 for r in records)

    reference = tmp_path / "gleam"
    train(load_config(None, settings | {"strategy": "gleam", "output": str(reference)}))
    _assert_same_weights(_weights(out), _weights(reference))
    model, card = load_model(out)
    assert card.strategy["name"] == "pgleam" and card.strategy["world_size"] == 2
    assert card.strategy["unrolls"] == 4 and card.strategy["modules"] == 4
    assert card.steps == 4 and model.num_unrolls == 4


@pytest.mark.parametrize("strategy", ["gleam", "checkpoint"])
def test_data_parallel_equals_one_process_with_the_same_global_batch(data, tmp_path, strategy):
    """Global batch 3 over 2 ranks (2 + 1 samples; the last batch of the epoch has 1 sample, so
    one rank takes part with weight 0): same weights as one process."""
    settings = COMMON | {
        "model.num_unrolls": 2,
        "steps": 2,
        "batch_size": 3,
        "checkpoint_every": 1,
        "strategy": strategy,
        "train_dir": str(data / "train"),
    }
    if strategy == "gleam":
        settings["modules"] = 2
    out = tmp_path / "dp"
    proc, _ = _torchrun(settings | {"output": out})
    assert proc.returncode == 0, _errors(proc)
    assert f"{strategy} data parallel over 2 processes" in proc.stdout
    reference = tmp_path / "one"
    train(load_config(None, settings | {"output": str(reference)}))
    _assert_same_weights(_weights(out), _weights(reference))
    logged = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    single = [
        json.loads(line)["loss"] for line in (reference / "log.jsonl").read_text().splitlines()
    ]
    np.testing.assert_allclose(logged, single, rtol=1e-4)
    assert load_model(out)[1].strategy["world_size"] == 2
