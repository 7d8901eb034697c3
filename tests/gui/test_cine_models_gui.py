"""Cine (2-D + time) models in the app: greyed out on 2-D files, enabled and checked on cine files.

A temporary zoo holds a tiny 2-D MoDL (``dense``) and a tiny cine MoDL (``cine-tiny``: a 3x3x3
denoiser over t, y, x, 1 unroll, 4 features, untrained); ``checkpoints.zoo_dir`` points at it.
"""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6.QtCore import Qt

from tests.gui.conftest import run_and_wait

pytestmark = pytest.mark.gui

FRAMES = 12


def _card():
    from mriviewer.core.checkpoints import ModelCard

    return ModelCard(
        strategy={"name": "e2e", "unrolls": 1},
        training_data={"note": "untrained test fixture"},
        mask={"kind": "random"},
        accelerations=[8.0],
        loss="l1",
    )


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    from mriviewer.core.checkpoints import save_model
    from mriviewer.core.models import MoDL

    root = tmp_path_factory.mktemp("zoo")
    save_model(root / "dense.safetensors", MoDL(num_unrolls=1, features=4, cg_iters=3), _card())
    cine = MoDL(num_unrolls=1, features=4, cg_iters=3, denoiser="3d")
    save_model(root / "cine-tiny.safetensors", cine, _card())
    return root


@pytest.fixture
def zoo_window(zoo, monkeypatch, request):
    """The main window (on the 2-D phantom file) built while the zoo is the temporary one."""
    from mriviewer.core import checkpoints

    monkeypatch.setattr(checkpoints, "zoo_dir", lambda: zoo)
    return request.getfixturevalue("window")


def _item(window, key):
    panel = window.methods_panel
    for i in range(panel.list.count()):
        item = panel.list.item(i)
        if item.data(Qt.ItemDataRole.UserRole) == key:
            return item
    raise AssertionError(f"{key} is not in the method list")


def _enabled(item) -> bool:
    return bool(item.flags() & Qt.ItemFlag.ItemIsEnabled)


def test_cine_model_is_greyed_out_on_2d_and_checked_on_cine(zoo_window, zoo, case_file, qtbot):
    w = zoo_window
    cine_key = w.zoo_keys["cine-tiny"]
    dense_key = w.zoo_keys["dense"]
    assert cine_key == f"model:{zoo / 'cine-tiny.safetensors'}"
    cine, dense = _item(w, cine_key), _item(w, dense_key)
    assert cine.text() == "model: cine-tiny"
    # 2-D file: listed, greyed out, unchecked, and the tooltip says why
    assert not w.session.is_cine
    assert not _enabled(cine) and cine.checkState() == Qt.CheckState.Unchecked
    assert "runs on cine files" in cine.toolTip() and "3d denoiser" in cine.toolTip()
    assert _enabled(dense)
    w.methods_panel.select(cine_key)  # its card says what it is
    card = w.methods_panel.card.toPlainText()
    assert '"denoiser": "3d"' in card and '"dynamic": true' in card
    # the demo (2-D) keeps it greyed out
    assert w.open_file("demo")
    assert not w.session.is_cine and not _enabled(cine)
    assert cine_key not in w.methods_panel.checked()
    # a cine file: every model enabled, the bundled cine model checked with the cine defaults
    assert w.open_file("demo-cine")
    assert w.session.is_cine
    assert _enabled(cine) and _enabled(dense)
    assert set(w.methods_panel.checked()) == {"zero-filled", "cg-sense", "kt-l1", cine_key}
    assert "runs on cine files" not in cine.toolTip()
    # the comparison runs it on the series: its pane shows the current frame
    assert not run_and_wait(qtbot, w, ["zero-filled", cine_key], timeout=120000)
    trace = w.traces[cine_key]
    assert trace.error is None and trace.complete
    assert trace.iterations == [0, 1] and trace.images[-1].shape == (FRAMES, 64, 64)
    assert np.isfinite(trace.metrics[-1]["psnr"])
    pane = w.grid.panes[cine_key]
    assert "cine-tiny" in pane.title and "PSNR" in pane.title
    np.testing.assert_allclose(pane.data, np.abs(trace.images[-1][w.session.frame]), rtol=1e-5)
    # back to a 2-D file: unchecked and greyed out again
    assert w.open_file(case_file, 0)
    assert not w.session.is_cine
    assert not _enabled(cine) and cine.checkState() == Qt.CheckState.Unchecked
    assert "runs on cine files" in cine.toolTip() and _enabled(dense)


def test_a_zoo_without_cine_models_keeps_the_cine_defaults(tmp_path, monkeypatch, request):
    """Today's state: no cine model bundled (here: an empty zoo); a cine file checks the cine
    methods only and nothing is greyed out on 2-D beyond kt-l1."""
    from mriviewer.core import checkpoints

    monkeypatch.setattr(checkpoints, "zoo_dir", lambda: tmp_path)
    w = request.getfixturevalue("window")
    assert w.zoo_keys == {} and w.bundled_cine_models() == []
    assert all(_enabled(w.methods_panel.list.item(i)) for i in range(w.methods_panel.list.count()))
    assert w.open_file("demo-cine")
    assert set(w.methods_panel.checked()) == {"zero-filled", "cg-sense", "kt-l1"}


def test_opening_a_cine_model_file_on_a_2d_file_lists_it_greyed_out(window, tmp_path):
    from mriviewer.core.checkpoints import save_model
    from mriviewer.core.models import MoDL

    path = save_model(
        tmp_path / "mine.safetensors", MoDL(num_unrolls=1, features=4, denoiser="3d"), _card()
    )
    assert window.open_model(path)
    key = f"model:{path.resolve()}"
    item = _item(window, key)
    assert not _enabled(item) and key not in window.methods_panel.checked()
    assert "runs on cine files" in item.toolTip()
    assert "cine model" in window.statusBar().currentMessage()
    assert window.open_file("demo-cine")
    assert _enabled(item)


def test_a_greyed_out_method_is_refused_up_front_by_run_and_by_the_scripted_app(
    zoo, monkeypatch, request, qapp, capsys
):
    """A cine model (or kt-l1) asked for on a 2-D file, by ``run`` or ``--run``, is refused with
    a one-line reason before anything starts; on a cine file a 2-D-only method is refused."""
    from mriviewer.core import checkpoints
    from mriviewer.gui.app import run_app

    monkeypatch.setattr(checkpoints, "zoo_dir", lambda: zoo)
    w = request.getfixturevalue("window")
    cine_key = w.zoo_keys["cine-tiny"]
    assert not w.session.is_cine
    assert not w.run(["zero-filled", cine_key])
    assert "cine-tiny is a cine model: it runs on cine files only" in w.error_label.text()
    assert not w.controller.running and cine_key not in w.traces
    assert not w.run(["kt-l1"])
    assert "kt-l1 runs on cine files only" in w.error_label.text()
    assert w.open_file("demo-cine")
    assert w.unavailable_methods(["l1-wavelet", cine_key, "kt-l1"]) == {
        "l1-wavelet": "l1-wavelet runs on 2-D slices, not on cine series"
    }
    capsys.readouterr()
    assert run_app(["--demo", "--run", "zero-filled,model:cine-tiny", "--exit"]) == 1
    err = capsys.readouterr().err
    assert "cine-tiny is a cine model: it runs on cine files only" in err
    assert "the run could not start" not in err
