"""core/device.py: one device resolution; core/memory.py: one peak-memory API."""

from __future__ import annotations

import pytest
import torch

from mriviewer.commands.common import resolve_device as cli_resolve_device
from mriviewer.core.device import best_device, resolve_device
from mriviewer.core.errors import ConfigError
from mriviewer.core.memory import PeakMemory, peak_memory_bytes


def test_auto_is_the_best_available_device_and_others_are_checked():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert best_device() == expected
    for auto in ("auto", "", None):
        assert resolve_device(auto) == expected
    assert resolve_device("cpu") == "cpu"
    assert cli_resolve_device("auto") == expected  # the CLI uses the same rule
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("nonsense")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:1")


def test_peak_memory_on_the_cpu():
    meter = PeakMemory("cpu")
    block = torch.ones(2_000_000)
    assert meter.update() >= 0.0
    del block
    size, method = peak_memory_bytes("cpu")
    assert size > 0 and method == "process peak RSS"
