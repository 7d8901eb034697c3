"""benchmarks/eval_report.py: the report names files relative to the repository (never the
absolute paths of the machine it ran on) and says how each bundled model was trained."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report_module():
    spec = importlib.util.spec_from_file_location("eval_report", REPO / "benchmarks/eval_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_names_relative_paths_and_each_models_training(report_module):
    from mriviewer.core.compare import get_method

    summaries = {
        name: report_module.model_summary(get_method(name)) for name in report_module.MODELS
    }
    for name, summary in summaries.items():
        assert summary["path"] == f"resources/models/{name[len('model:') :]}.safetensors"
        assert (REPO / summary["config"]).is_file() and summary["training_seconds"] > 0
        assert not summary["training_data"].startswith("/")
    assert report_module.relative_to_repo(REPO / "data/sim/test") == "data/sim/test"
    assert report_module.relative_to_repo(REPO.parent / "shared/x.dat") == "../shared/x.dat"
    text = report_module.markdown(
        {
            "results": {"sim": {"random-4x": {"zero-filled": {
                "psnr": {"mean": 21.6, "std": 0.4}, "ssim": {"mean": 0.536, "std": 0.0}}}}},
            "datasets": {"sim": {"path": "data/sim/test", "slices": ["a.h5#0", "a.h5#1"]}},
            "tuning": {"random-4x": {"l1-wavelet lamda": 0.001}},
            "models": summaries,
        }
    )  # fmt: skip
    assert "## sim (data/sim/test, 2 slices)" in text
    assert "| zero-filled | 21.60 (0.40) / 0.536 |" in text
    dense = summaries["model:dense"]
    row = next(line for line in text.splitlines() if line.startswith("| model:dense |"))
    assert f"{dense['steps']} | {dense['training_seconds'] / 60:.0f} min" in row
    assert str(REPO) not in text
