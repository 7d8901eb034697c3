"""Plugin methods in the app: listed, run by the scripted app in the compute process, and a
plugin that failed to load is named in the status bar."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.plugin_site import REPO, make_plugin_site

pytestmark = pytest.mark.gui


def test_scripted_app_runs_a_plugin_in_the_compute_process(case_file, tmp_path):
    (tmp_path / "site").mkdir()
    paths = make_plugin_site(tmp_path / "site")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*paths, str(REPO), os.environ.get("PYTHONPATH", "")]),
        "QT_QPA_PLATFORM": "offscreen",
        "MRIVIEWER_CONFIG_DIR": str(tmp_path),
    }
    env.pop("MRIVIEWER_WORKER", None)  # the default: methods run in a spawned process
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mriviewer",
            str(case_file),
            "--run",
            "zero-filled,pocs-sense",
            "--accel",
            "2",
            "--mask",
            "equispaced",
            "--export-metrics",
            str(tmp_path / "m.json"),
            "--exit",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["method"]: r for r in json.loads((tmp_path / "m.json").read_text())["rows"]}
    assert set(rows) == {"zero-filled", "pocs-sense"}
    assert rows["pocs-sense"]["psnr"] > rows["zero-filled"]["psnr"]


def test_failed_plugin_is_named_in_the_status_bar(qtbot, monkeypatch, case_file, capsys):
    from mriviewer.core import compare
    from mriviewer.core.plugins import PluginRecord
    from mriviewer.gui.main_window import MainWindow

    failed = PluginRecord("broken", "broken-pkg", "broken:Method", error="import failed: boom")
    monkeypatch.setattr(compare, "_PLUGINS", [failed])
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_file(case_file, 0)  # its "opened" message must not hide the plugin's
    expected = "plugin method 'broken' (package broken-pkg) skipped: import failed: boom"
    qtbot.waitUntil(lambda: win.statusBar().currentMessage() == expected, timeout=5000)
    assert f"mriviewer: warning: {expected}" in capsys.readouterr().err
    assert "grappa" in win.methods_panel.keys()
    win.controller.stop()
