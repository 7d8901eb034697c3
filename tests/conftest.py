"""Shared fixtures: small synthetic multi-coil cases and the path to ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep coil-map disk caches and app settings out of the user's home during tests."""
    monkeypatch.setenv("MRIVIEWER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("MRIVIEWER_CONFIG_DIR", str(tmp_path_factory.getbasetemp() / "config"))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread is faster and steadier."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip when it is absent (as on a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (shared MRI data only exists beside the repo)")
    return SHARED_DATA


def phantom_case(h: int = 64, w: int = 64, coils: int = 8, seed: int = 0):
    """A smooth synthetic multi-coil case: (kspace (C,H,W) complex64, image (H,W), maps)."""
    import sigpy.mri

    from mriviewer.core.physics.fft import fft2c_np

    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    image = ((yy / 0.8) ** 2 + (xx / 0.6) ** 2 < 1).astype(np.float32)
    image += 0.5 * (((yy - 0.2) / 0.25) ** 2 + ((xx + 0.1) / 0.15) ** 2 < 1)
    image -= 0.3 * (((yy + 0.3) / 0.1) ** 2 + ((xx - 0.2) / 0.2) ** 2 < 1)
    phase = np.exp(1j * 0.5 * (yy + rng.uniform(-1, 1) * xx))
    image = (image * phase).astype(np.complex64)
    maps = sigpy.mri.birdcage_maps((coils, h, w)).astype(np.complex64)
    kspace = fft2c_np(maps * image).astype(np.complex64)
    return kspace, image, maps


@pytest.fixture
def phantom():
    return phantom_case()
