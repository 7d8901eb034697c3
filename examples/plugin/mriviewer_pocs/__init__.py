"""POCS-SENSE: projections onto convex sets for SENSE (an example mriviewer plugin).

Alternates two projections, starting from the SENSE zero-filled image ``x0 = A^H y``:

1. data consistency: coil k-spaces ``k_c = F(S_c x)`` with the measured points replaced by the
   measurements ``y`` (``k_c <- (1 - M) k_c + y_c``);
2. the coil model: ``x = sum_c conj(S_c) F^-1(k_c) / sum_c |S_c|^2`` (least squares, 0 where
   no coil sees the pixel).

Each pass is one iteration; without regularisation it converges (slowly) to the SENSE
least-squares image (the fixed point is the Landweber / CG-SENSE solution with lamda = 0).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from mriviewer.core.errors import ReconError
from mriviewer.core.physics.fft import fft2c_np, ifft2c_np
from mriviewer.core.recon.base import IterationResult, ReconProblem

__version__ = "0.1.0"


class PocsSense:
    """POCS-SENSE: alternating data-consistency and coil-model projections.

    Settings: ``max_iter`` (number of passes, integer >= 1; default 30).
    """

    name = "pocs-sense"

    def __init__(self, max_iter: int = 30) -> None:
        try:
            self.max_iter = int(max_iter)
        except (TypeError, ValueError) as exc:
            raise ReconError(f"pocs-sense: max_iter={max_iter!r} is not an integer") from exc
        if self.max_iter < 1:
            raise ReconError(f"pocs-sense: max_iter={max_iter!r} must be >= 1")

    def settings(self) -> dict[str, Any]:
        return {"max_iter": self.max_iter}

    def iterate(self, problem: ReconProblem, device: str = "cpu") -> Iterator[IterationResult]:
        """Yield ``A^H y`` (iteration 0) then one ``(H, W)`` complex64 image per pass.

        Images are in the problem's normalised units; ``device`` is ignored (numpy on CPU).
        Raises ReconError without coil maps."""
        if problem.coil_maps is None:
            raise ReconError("pocs-sense needs coil maps (none were estimated)")
        start = time.perf_counter()
        maps = np.asarray(problem.coil_maps, dtype=np.complex64)
        mask = np.asarray(problem.mask, dtype=bool)[None]
        y = np.asarray(problem.kspace, dtype=np.complex64) * mask
        norm = (np.abs(maps) ** 2).sum(0)
        inverse = np.where(norm > 1e-6, 1.0 / np.maximum(norm, 1e-6), 0.0).astype(np.float32)
        x = (np.conj(maps) * ifft2c_np(y)).sum(0).astype(np.complex64)
        yield IterationResult(self.name, 0, x, time.perf_counter() - start)
        for k in range(1, self.max_iter + 1):
            coil_k = np.where(mask, y, fft2c_np(maps * x[None]))
            x = ((np.conj(maps) * ifft2c_np(coil_k)).sum(0) * inverse).astype(np.complex64)
            yield IterationResult(
                self.name, k, x, time.perf_counter() - start, final=k == self.max_iter
            )
