"""The mask panel on a zero-padded fastMRI file (masks in the acquired band, R over it) and with
settings no mask can meet (the refusal is shown, the app keeps its previous mask)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import phantom_case

pytestmark = pytest.mark.gui

PAD, W = 8, 96


@pytest.fixture
def padded_file(tmp_path):
    from mriviewer.core.io import write_fastmri

    kspace = phantom_case(64, W, 4, seed=2)[0]
    kspace[..., :PAD] = 0
    kspace[..., W - PAD :] = 0
    path = tmp_path / "knee.h5"
    write_fastmri(path, kspace[None], attrs={"padding_left": PAD, "padding_right": W - PAD})
    return path


def _choose(panel, kind):
    panel.kind_combo.setCurrentIndex(panel.kind_combo.findData(kind))


def test_masks_of_a_padded_file_stay_in_the_band(window, padded_file):
    assert window.open_file(padded_file)
    panel = window.mask_panel
    _choose(panel, "random")
    panel.accel_spin.setValue(4.0)
    arr = window.mask.array
    assert not arr[:, :PAD].any() and not arr[:, W - PAD :].any()
    inside = arr[:, PAD : W - PAD]
    achieved = inside.size / inside.sum()
    assert window.mask.achieved_acceleration == pytest.approx(achieved)
    label = panel.achieved_label.text()
    assert f"achieved R: {achieved:.2f}  ({int(inside.sum())}/{inside.size} samples)" in label
    assert "R over the acquired columns 8-87 (80 of 96; padding_left/padding_right attributes)" in (
        label
    )
    assert f"R = 4 (achieved {achieved:.2f})" in window.mask_description()  # figure captions
    _choose(panel, "poisson")
    assert not window.mask.array[:, :PAD].any() and not window.mask.array[:, W - PAD :].any()


def test_unreachable_settings_are_shown_and_the_mask_is_kept(window):
    panel = window.mask_panel
    _choose(panel, "poisson")
    before = window.mask.array.copy()
    panel.calib_spin.setValue(20)
    panel.accel_spin.setValue(1.01)
    expected = (
        "poisson: R=1.01 is denser than a Poisson-disc pattern gets on 48 x 48 with a 20 x 20 "
        "calibration (R >= about 1.12): use R = 1 for the full mask, a larger R, or a random "
        "or gaussian mask"
    )
    assert panel.achieved_label.text() == f"mask not drawn: {expected}"
    assert window.errors[-1] == expected
    np.testing.assert_array_equal(window.mask.array, before)
    panel.accel_spin.setValue(1.0)  # R = 1: the full mask, for every kind
    assert window.mask.array.all()


def test_achieved_r_warning_is_in_the_label(window):
    panel = window.mask_panel
    _choose(panel, "equispaced")
    panel.cf_spin.setValue(0.08)
    panel.accel_spin.setValue(4.0)
    assert window.mask.warnings and window.mask.warnings[0].startswith("equispaced mask: achieved")
    assert window.mask.warnings[0] in panel.achieved_label.text()
