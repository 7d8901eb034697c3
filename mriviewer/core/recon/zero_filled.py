"""Zero-filled reconstructions: SENSE-combined ``A^H y`` and root-sum-of-squares."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from mriviewer.core.physics.fft import ifft2c
from mriviewer.core.physics.sense import SenseOperator
from mriviewer.core.recon.base import IterationResult, ReconProblem


class ZeroFilled:
    """``A^H y`` with coil maps (``combine="sense"``) or RSS of the coil images (``"rss"``)."""

    def __init__(self, combine: str = "sense", name: str | None = None) -> None:
        if combine not in ("sense", "rss"):
            raise ValueError(f"combine must be 'sense' or 'rss', got {combine!r}")
        self.combine = combine
        self.name = name or ("zero-filled" if combine == "sense" else "zero-filled-rss")

    def settings(self) -> dict[str, Any]:
        return {"combine": self.combine}

    def iterate(self, problem: ReconProblem, device: str = "cpu") -> Iterator[IterationResult]:
        start = time.perf_counter()
        k = torch.from_numpy(problem.kspace).to(device)
        if self.combine == "rss" or problem.coil_maps is None:
            image = torch.sqrt((ifft2c(k).abs() ** 2).sum(0)).to(torch.complex64)
        else:
            maps = torch.from_numpy(problem.coil_maps).to(device)
            op = SenseOperator(maps[None], torch.from_numpy(problem.mask).to(device)[None])
            image = op.adjoint(k[None])[0]
        out = image.detach().cpu().numpy().astype(np.complex64)
        yield IterationResult(self.name, 0, out, time.perf_counter() - start, final=True)
