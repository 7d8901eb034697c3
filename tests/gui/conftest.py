"""Fixtures for the GUI tests: small fastMRI files and a main window (offscreen Qt)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

from tests.conftest import phantom_case  # noqa: E402


@pytest.fixture(autouse=True)
def _no_quit_on_last_window_closed(qapp):
    """Closing a test's window must not post a quit that ends the next test's wait loop."""
    qapp.setQuitOnLastWindowClosed(False)
    yield


@pytest.fixture(scope="session")
def case_file(tmp_path_factory) -> Path:
    """A 2-slice, 4-coil, 48x48 fastMRI file with a reference."""
    from mriviewer.core.io import write_fastmri

    path = tmp_path_factory.mktemp("cases") / "phantom.h5"
    ks = np.stack([phantom_case(48, 48, 4, seed=s)[0] for s in range(2)])
    write_fastmri(path, ks)
    return path


SLOW_MODULE = "tests.gui.slow_method"


@pytest.fixture
def slow_method():
    """Registers ``test-slow`` here; windows import SLOW_MODULE so the compute process has it."""
    from mriviewer.core import compare

    importlib.import_module(SLOW_MODULE)
    yield "test-slow"
    compare.METHODS.pop("test-slow", None)


@pytest.fixture
def window(qtbot, case_file):
    from mriviewer.gui.app import configure_pyqtgraph
    from mriviewer.gui.main_window import MainWindow

    configure_pyqtgraph()  # the app's options (antialiased curves)

    win = MainWindow()
    qtbot.addWidget(win)
    win.plugin_modules.append(SLOW_MODULE)
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
