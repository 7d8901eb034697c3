"""The one training loop's callbacks: order per step, keep-best, a given model, run callbacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mriviewer.core.io import write_fastmri
from mriviewer.core.models import build_model
from mriviewer.core.training import Trainer, load_config, train
from mriviewer.core.training.callbacks import Callback, KeepBest
from tests.conftest import phantom_case

SIZE = 32


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loop")
    for folder, seeds in (("train", (0, 1)), ("val", (7,))):
        for s in seeds:
            ks = np.stack([phantom_case(SIZE, SIZE, coils=4, seed=10 * s + j)[0] for j in (0, 1)])
            write_fastmri(root / folder / f"case{s}.h5", ks)
    return root


def _config(data: Path, out: Path, **extra):
    settings = {
        "model.name": "modl",
        "model.num_unrolls": 2,
        "model.features": 4,
        "coil_method": "lowres",
        "mask.kind": "random",
        "mask.center_fraction": 0.16,
        "device": "cpu",
        "progress": False,
        "seed": 1,
        "strategy": "e2e",
        "steps": 4,
        "val_every": 2,
        "checkpoint_every": 2,
        "train_dir": str(data / "train"),
        "val_dir": str(data / "val"),
        "output": str(out),
    }
    return load_config(None, settings | extra)


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_start(self, trainer):
        self.calls.append(("start", trainer.step))

    def on_step(self, trainer, record):
        assert not any(k.startswith("val_") for k in record)  # before validation
        record["seen_by_callback"] = True
        self.calls.append(("step", trainer.step))

    def on_validation(self, trainer, metrics):
        assert {"psnr", "ssim", "nmse", "zero_filled_psnr"} <= set(metrics)
        self.calls.append(("validation", trainer.step))

    def on_record(self, trainer, record):
        self.calls.append(("record", trainer.step, "val_psnr" in record))

    def on_end(self, trainer, result):
        self.calls.append(("end", result.steps))


def test_callbacks_run_in_order_and_keep_best_is_one_of_them(data, tmp_path):
    recorder = Recorder()
    result = train(_config(data, tmp_path / "run"), callbacks=[recorder])
    assert recorder.calls == [
        ("start", 0),
        ("step", 1),
        ("record", 1, False),
        ("step", 2),
        ("validation", 2),
        ("record", 2, True),
        ("step", 3),
        ("record", 3, False),
        ("step", 4),
        ("validation", 4),
        ("record", 4, True),
        ("end", 4),
    ]
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(r["seen_by_callback"] for r in log)  # fields a callback adds reach the log
    psnr = {r["step"]: r["val_psnr"] for r in log if "val_psnr" in r}
    best_step = max(psnr, key=psnr.get)
    assert result.best["step"] == best_step
    card = json.loads((tmp_path / "run" / "best.json").read_text())
    assert card["validation"]["step"] == best_step
    trainer = Trainer(_config(data, tmp_path / "other"))
    assert [type(cb) for cb in trainer.callbacks] == [KeepBest]


def test_trainer_trains_a_given_model(data, tmp_path):
    config = _config(data, tmp_path / "given", steps=2, val_dir=None)
    model = build_model({"name": "modl", "num_unrolls": 2, "features": 4})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(config, model=model)
    assert trainer.model is model
    result = trainer.run()
    assert result.steps == 2
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_pruning_is_a_callback_of_a_pruning_run(data, tmp_path):
    config = _config(data, tmp_path / "wt", prune={"method": "wt", "density": 0.5, "every": 1})
    trainer = Trainer(config)
    assert trainer.callbacks[0] is trainer.pruning
    result = trainer.run()
    log = [json.loads(line) for line in (tmp_path / "wt" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["density"] == pytest.approx(0.5, abs=0.01) and result.steps == 4


def test_cpu_training_follows_the_free_cores_unless_threads_is_fixed(data, tmp_path, monkeypatch):
    """With follow_load (``mriviewer train``) and without ``threads`` the run re-picks torch's
    thread count between steps (issue 14); an explicit ``threads`` fixes it."""
    import torch

    from mriviewer.core import threads

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    picks = []

    def pick(reserve=0, samples=9):
        picks.append(samples)
        return 1

    monkeypatch.setattr(threads, "pick_threads", pick)
    before = torch.get_num_threads()
    try:
        trainer = Trainer(_config(data, tmp_path / "auto"), follow_load=True)
        trainer.thread_governor.interval_s = 0.0  # every step
        trainer.run()
        assert trainer.thread_governor.enabled and len(picks) == 4
        assert torch.get_num_threads() == 1
        picks.clear()
        fixed = Trainer(_config(data, tmp_path / "fixed", threads=2), follow_load=True)
        fixed.run()
        assert not fixed.thread_governor.enabled and picks == []
        assert torch.get_num_threads() == 2
        # the Python API keeps the thread count unless asked (bit-for-bit repeatable runs)
        assert not Trainer(_config(data, tmp_path / "api")).thread_governor.enabled
    finally:
        torch.set_num_threads(before)
