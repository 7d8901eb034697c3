"""The app on a prospectively undersampled scan, and the reference convention selector."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mriviewer.core.physics.masks import MaskSpec, make_mask
from tests.conftest import phantom_case
from tests.gui.conftest import run_and_wait

pytestmark = pytest.mark.gui


@pytest.fixture
def accelerated_file(tmp_path):
    kspace, _, _ = phantom_case(64, 64, 4, seed=1)
    mask = make_mask(MaskSpec(kind="poisson", acceleration=3, calib=16, seed=4), (64, 64)).array
    path = tmp_path / "accelerated.npy"
    np.save(path, (kspace * mask).astype(np.complex64))
    return path, mask


def test_undersampled_scan_uses_its_own_sampling_and_shows_no_psnr(
    window, accelerated_file, qtbot, tmp_path
):
    path, mask = accelerated_file
    assert window.open_file(path)
    # the mask is the data's own sampling, drawn, with its R and ACS
    assert window.mask_panel.kind() == "data"
    np.testing.assert_array_equal(window.effective_mask(), mask)
    label = window.mask_panel.achieved_label.text()
    assert f"achieved R: {mask.size / mask.sum():.2f}" in label and "ACS" in label
    assert not window.ground_truth
    assert not window.reference_combo.isEnabled()
    assert window.table.isColumnHidden(2)  # PSNR
    assert not run_and_wait(qtbot, window, ["zero-filled", "cg-sense"])
    titles = {k: p.label.text for k, p in window.grid.panes.items()}
    assert "no ground truth" in titles["reference"] and "fully sampled" not in titles["reference"]
    assert "DC residual" in titles["cg-sense"] and "PSNR" not in titles["cg-sense"]
    assert "no PSNR" in window.metrics_note.text()
    final = window.traces["cg-sense"].metrics[-1]
    assert set(final) == {"dc_residual", "rel_change"}
    assert window.table.cell_text(1, "DC residual") == f"{final['dc_residual']:.4g}"
    assert window.curves.plots["psnr"].getAxis("left").labelText.startswith("DC residual")
    out = tmp_path / "m.csv"
    assert window.export_metrics(out)
    rows = list(csv.DictReader(out.open()))
    assert all(r["psnr"] == "" for r in rows) and rows[-1]["dc_residual"]
    sidecar = window.provenance()
    assert sidecar["ground_truth"] is False and sidecar["reference"] is None
    assert sidecar["mask"]["spec"]["kind"] == "data"


def test_a_mask_on_top_is_applied_only_when_asked(window, accelerated_file):
    path, own = accelerated_file
    assert window.open_file(path)
    window.mask_panel.set_kind("random")  # the user asks for more undersampling
    effective = window.effective_mask()
    assert (effective & ~own).sum() == 0 and effective.sum() < own.sum()
    label = window.mask_panel.achieved_label.text()
    assert f"achieved R: {effective.size / effective.sum():.2f}" in label
    assert "on top of the data's own sampling" in label and "full grid" in label


def test_reference_selector_reruns_with_the_sense_reference(window, qtbot):
    assert window.ground_truth and window.reference_combo.isEnabled()
    assert not run_and_wait(qtbot, window, ["zero-filled", "cg-sense"])
    rss_psnr = window.traces["cg-sense"].metrics[-1]["psnr"]
    with qtbot.waitSignal(window.runFinished, timeout=60000):
        window.reference_combo.setCurrentIndex(window.reference_combo.findData("sense"))
    assert window.reference_kind == "sense"
    assert "SENSE" in window.grid.panes["reference"].label.text
    assert window.traces["cg-sense"].metrics[-1]["psnr"] != pytest.approx(rss_psnr)
    info = window.provenance()
    assert info["reference"] == "sense" and "ESPIRiT" in info["reference_definition"]
    state = json.loads(window.session_state().to_json())
    assert state["reference"] == "sense" and state["metrics_region"] == "all"
