"""The data panel's encoding selector: shown only for MRD files with several encodings; choosing
one reopens the file with that encoding space."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.io.test_io_plausibility import encoding_rows, two_encoding_xml, write_rows
from tests.core.io.test_io_readers import random_kspace

pytestmark = pytest.mark.gui


def test_encoding_selector_reopens_the_file(window, tmp_path):
    panel = window.data_panel
    assert not panel.encoding_row.isVisibleTo(panel)  # the fastMRI case has one encoding
    k0, k1 = random_kspace((3, 16, 16), 1), 10 * random_kspace((3, 16, 8), 2)
    path = write_rows(
        tmp_path / "two.h5",
        encoding_rows(k0, 0) + encoding_rows(k1, 1),
        two_encoding_xml((16, 16), (16, 8)),
    )
    assert window.open_file(path)
    assert panel.encoding_row.isVisibleTo(panel)
    combo = panel.encoding_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "0: 16 x 16, 16 acquisitions",
        "1: 16 x 8, 8 acquisitions",
    ]
    assert combo.currentIndex() == 0
    np.testing.assert_array_equal(window.volume.kspace, k0)
    combo.activated.emit(1)  # what choosing the item does
    assert window.volume.matrix == (16, 8) and window.volume.header["encoding"] == 1
    np.testing.assert_array_equal(window.volume.kspace, k1)
    assert combo.currentIndex() == 1 and panel.encoding_row.isVisibleTo(panel)
    assert not window.reopen_with_encoding(1)  # already shown: nothing to do
