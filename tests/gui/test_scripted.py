"""Scripted mode: ``mriviewer FILE --run ... --screenshot ... --export-figure ... --exit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui


def test_scripted_run_writes_screenshot_and_figure(case_file, tmp_path):
    shot, fig = tmp_path / "shot.png", tmp_path / "fig.pdf"
    # thread backend: one interpreter instead of two (the process backend is tested in-process)
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "MRIVIEWER_CONFIG_DIR": str(tmp_path),
        "MRIVIEWER_WORKER": "thread",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mriviewer",
            str(case_file),
            "--run",
            "zero-filled,cg-sense",
            "--accel",
            "4",
            "--mask",
            "equispaced",
            "--seed",
            "3",
            "--slice",
            "1",
            "--size",
            "1000x720",
            "--screenshot",
            str(shot),
            "--export-figure",
            str(fig),
            "--export-metrics",
            str(tmp_path / "m.json"),
            "--exit",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert shot.read_bytes()[:4] == b"\x89PNG" and fig.read_bytes()[:4] == b"%PDF"
    from PyQt6.QtGui import QImage

    image = QImage(str(shot))
    assert (image.width(), image.height()) == (1000, 720)
    side = json.loads((tmp_path / "fig.pdf.json").read_text())
    assert side["slice"] == 1
    assert side["mask"]["spec"] == {
        "kind": "equispaced",
        "acceleration": 4.0,
        "center_fraction": 0.08,
        "calib": 20,
        "seed": 3,
    }
    assert "cg-sense" in proc.stdout and "PSNR" in proc.stdout
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"zero-filled", "cg-sense"}


def test_scripted_failures_exit_nonzero_with_message(qapp, tmp_path, capsys):
    from mriviewer.gui.app import run_app

    assert run_app([str(tmp_path / "absent.h5"), "--run", "zero-filled", "--exit"]) == 1
    err = capsys.readouterr().err
    assert "absent.h5" in err and "not found" in err


def test_no_arguments_opens_the_demo(qapp):
    from PyQt6.QtCore import QTimer

    from mriviewer.core.resources import demo_path
    from mriviewer.gui.app import run_app
    from mriviewer.gui.main_window import MainWindow

    if not demo_path().is_file():
        pytest.skip("the demo case is not in this checkout")
    seen = {}

    def inspect_and_close():
        for w in qapp.topLevelWidgets():
            if isinstance(w, MainWindow) and w.isVisible():
                seen["file"] = w.volume.path
                seen["icon"] = not qapp.windowIcon().isNull()
                w.close()

    QTimer.singleShot(300, inspect_and_close)
    assert run_app([]) == 0
    assert seen["file"] == demo_path() and seen["icon"]
    assert qapp.desktopFileName() == "mriviewer" and qapp.applicationName() == "mriviewer"
