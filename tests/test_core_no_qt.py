"""The headless core never imports Qt (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import importlib, sys
mods = ["mriviewer.core", "mriviewer.core.io", "mriviewer.core.physics", "mriviewer.core.recon",
        "mriviewer.core.compare", "mriviewer.core.metrics", "mriviewer.core.figures",
        "mriviewer.core.checkpoints", "mriviewer.core.training", "mriviewer.cli"]
loaded = []
for name in mods:
    try:
        importlib.import_module(name)
        loaded.append(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
from mriviewer.core.figures import FigurePane, FigureSpec, render_figure
import numpy as np
render_figure(FigureSpec(panes=[FigurePane("x", np.zeros((4, 4)))], levels=(0, 1)))
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PyQt5", "PyQt6", "PySide2", "PySide6"))
print(",".join(loaded))
print("QT:" + ",".join(qt))
"""


def test_core_imports_without_qt():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded, qt = proc.stdout.strip().splitlines()[-2:]
    assert "mriviewer.core.figures" in loaded and "mriviewer.core.compare" in loaded
    assert qt == "QT:", f"Qt imported by the core: {qt}"
