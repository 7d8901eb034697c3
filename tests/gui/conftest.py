"""Fixtures for the GUI tests: small fastMRI files and a main window (offscreen Qt)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

from tests.conftest import phantom_case  # noqa: E402


@pytest.fixture(scope="session")
def case_file(tmp_path_factory) -> Path:
    """A 2-slice, 4-coil, 48x48 fastMRI file with a reference."""
    from mriviewer.core.io import write_fastmri

    path = tmp_path_factory.mktemp("cases") / "phantom.h5"
    ks = np.stack([phantom_case(48, 48, 4, seed=s)[0] for s in range(2)])
    write_fastmri(path, ks)
    return path


class SlowIterative:
    """A real (if naive) iterative method for cancel tests: gradient steps on ||A x - y||^2
    with a pause per iteration, yielding every iterate."""

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


@pytest.fixture
def slow_method():
    from mriviewer.core import compare

    compare.register_method("test-slow", lambda **kw: SlowIterative(**kw))
    yield "test-slow"
    compare.METHODS.pop("test-slow", None)


@pytest.fixture
def window(qtbot, case_file):
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major")
    from mriviewer.gui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    assert win.open_file(case_file, 0)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.controller.stop()


def run_and_wait(qtbot, window, methods, timeout=60000) -> bool:
    """Start a run and wait for it to finish; returns the 'cancelled' flag."""
    with qtbot.waitSignal(window.runFinished, timeout=timeout) as blocker:
        assert window.run(methods)
    return blocker.args[0]
