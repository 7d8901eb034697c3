"""File > Export reconstructions as DICOM and NIfTI: one file per method, readable back."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gui.conftest import run_and_wait

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")


def test_export_two_methods_as_dicom_and_nifti(window, qtbot, tmp_path):
    assert not run_and_wait(qtbot, window, ["zero-filled", "cg-sense"])  # not cancelled
    finals = {k: np.abs(t.images[-1]) for k, t in window.traces.items()}
    assert window.export_recons(tmp_path / "recons.dcm"), window.errors
    files = sorted(tmp_path.glob("recons_*.dcm"))
    assert [p.name for p in files] == ["recons_cg-sense.dcm", "recons_zero-filled.dcm"]
    for path in files:
        ds = pydicom.dcmread(path)
        key = path.stem.removeprefix("recons_")
        values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(values, finals[key], atol=float(ds.RescaleSlope) / 2 + 1e-9)
        assert ds.SeriesDescription.startswith(key) and str(ds.PatientName) == ""
        # the test file's header: 48 x 48 matrix over the default 220 mm field of view
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([220 / 48, 220 / 48])
        assert "reference: rss" in ds.ImageComments and "mask: random" in ds.ImageComments
    assert window.export_recons(tmp_path / "recons.nii.gz"), window.errors
    for key, magnitude in finals.items():
        img = nib.load(tmp_path / f"recons_{key}.nii.gz")
        np.testing.assert_array_equal(np.asarray(img.dataobj)[:, :, 0], magnitude)
    assert not window.export_recons(tmp_path / "recons.tif")
    assert ".dcm, .nii or .nii.gz" in window.errors[-1]
