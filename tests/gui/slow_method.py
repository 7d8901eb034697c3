"""A slow iterative method for cancel/close tests, registered on import (also in the compute
process, which imports this module through ``MainWindow.plugin_modules``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from mriviewer.core import compare


class SlowIterative:
    """Gradient steps on ``||A x - y||^2`` with a pause per iteration, yielding every iterate."""

    name = "test-slow"

    def __init__(self, iterations: int = 400, pause: float = 0.02) -> None:
        self.iterations = iterations
        self.pause = pause

    def settings(self) -> dict:
        return {"iterations": self.iterations, "pause": self.pause}

    def iterate(self, problem, device: str = "cpu") -> Iterator:
        from mriviewer.core.physics.fft import fft2c_np, ifft2c_np
        from mriviewer.core.recon.base import IterationResult

        start = time.perf_counter()
        maps = problem.coil_maps
        y = problem.kspace
        x = (np.conj(maps) * ifft2c_np(y)).sum(0).astype(np.complex64)
        yield IterationResult(self.name, 0, x, time.perf_counter() - start)
        for it in range(1, self.iterations + 1):
            resid = fft2c_np(maps * x) * problem.mask - y
            x = (x - 0.5 * (np.conj(maps) * ifft2c_np(resid)).sum(0)).astype(np.complex64)
            time.sleep(self.pause)
            yield IterationResult(
                self.name, it, x, time.perf_counter() - start, final=it == self.iterations
            )


compare.register_method("test-slow", lambda **kw: SlowIterative(**kw))
