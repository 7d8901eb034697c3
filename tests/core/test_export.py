"""Reconstruction exports for other tools (``mriviewer.core.export``): DICOM and NIfTI read back
with pydicom and nibabel, HDF5 / NumPy as ``mriviewer recon`` writes them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.core.errors import KSpaceWriteError
from mriviewer.core.export import geometry_from_header, write_reconstruction, write_reconstructions
from mriviewer.core.io import open_kspace, write_fastmri
from mriviewer.core.io.fastmri import make_ismrmrd_header
from tests.conftest import phantom_case

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")

H, W = 40, 32
FOV = (160.0, 96.0)  # mm: 4 mm along axis 0 (x, rows), 3 mm along axis 1 (y, columns)


@pytest.fixture(scope="module")
def fov_file(tmp_path_factory):
    """A fully sampled 1-slice fastMRI file whose ISMRMRD header gives FOV 160 x 96 x 5 mm."""
    ks = phantom_case(H, W, coils=4, seed=3)[0]
    path = tmp_path_factory.mktemp("export") / "fov.h5"
    write_fastmri(path, ks[None], header_xml=make_ismrmrd_header((H, W), (H, W), fov_mm=FOV))
    return path


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(H, W)) + 1j * rng.normal(size=(H, W))).astype(np.complex64) * 37.5


ATTRS = {
    "method": "cg-sense",
    "method_settings": json.dumps({"lamda": 0.003, "max_iter": 15}),
    "mask": json.dumps({"spec": {"kind": "random", "acceleration": 4.0}}),
    "reference": "rss",
    "reference_definition": "reference: RSS of the fully sampled data (fastMRI)",
    "acceleration": 4.2,
    "slice": 0,
}


def _rescaled(ds) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_header_gives_pixel_spacing_and_thickness(fov_file):
    header = open_kspace(fov_file).header
    assert header["encoded_fov_mm"] == list(FOV) and header["recon_fov_mm"] == list(FOV)
    assert header["slice_thickness_mm"] == 5.0
    geo = geometry_from_header(header, (H, W))
    assert geo.spacing_mm == pytest.approx((4.0, 3.0)) and geo.notes == []
    unknown = geometry_from_header({}, (H, W))
    assert unknown.spacing_mm is None and "pixel spacing unknown" in unknown.notes[0]


def test_dicom_reads_back_with_spacing_and_values(fov_file, tmp_path):
    image = _image()
    out = tmp_path / "rec.dcm"
    header = open_kspace(fov_file).header
    result = write_reconstruction(out, image, attrs=ATTRS, header=header)
    assert result.paths == [out] and result.notes == []
    ds = pydicom.dcmread(out)  # a valid preamble + file meta, or this raises
    assert out.read_bytes()[128:132] == b"DICM"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.Modality == "MR" and ds.pixel_array.dtype == np.uint16
    assert (ds.Rows, ds.Columns) == (H, W)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([4.0, 3.0])
    assert float(ds.SliceThickness) == 5.0
    assert len(ds.ImageOrientationPatient) == 6 and len(ds.ImagePositionPatient) == 3
    slope = float(ds.RescaleSlope)
    np.testing.assert_allclose(_rescaled(ds), np.abs(image), atol=slope / 2 + 1e-9)
    assert slope == pytest.approx(np.abs(image).max() / 65535, rel=1e-9)
    assert ds.SeriesDescription.startswith("cg-sense lamda=0.003 max_iter=15")
    comments = ds.ImageComments
    assert "reference: rss" in comments and "mask: random" in comments and "R: 4.20" in comments
    # no patient identifiers: the sources carry none
    assert str(ds.PatientName) == "" and ds.PatientID == ""
    assert len({ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}) == 3


def test_dicom_without_spacing_is_secondary_capture(tmp_path):
    image = _image(1)
    result = write_reconstruction(tmp_path / "sc.dcm", image, attrs=ATTRS, header={})
    assert any("pixel spacing unknown" in n for n in result.notes)
    ds = pydicom.dcmread(tmp_path / "sc.dcm")
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert "PixelSpacing" not in ds and "ImageOrientationPatient" not in ds
    np.testing.assert_allclose(_rescaled(ds), np.abs(image), atol=float(ds.RescaleSlope) / 2)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_reads_back_exactly(fov_file, tmp_path, suffix):
    image = _image(2)
    out = tmp_path / f"rec{suffix}"
    write_reconstruction(out, image, attrs=ATTRS, header=open_kspace(fov_file).header)
    img = nib.load(out)
    assert img.shape == (H, W, 1) and img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(img.dataobj)[:, :, 0], np.abs(image))
    assert img.header.get_zooms() == pytest.approx((4.0, 3.0, 5.0))
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert img.header["descrip"].tobytes().startswith(b"mriviewer cg-sense ref=rss R=4.20")
    ext = json.loads(img.header.extensions[0].get_content())
    assert ext["method"] == "cg-sense" and ext["method_settings"]["max_iter"] == 15
    # the image centre sits at the origin, as in the DICOM file's nominal geometry
    centre = img.affine @ [(H - 1) / 2, (W - 1) / 2, 0, 1]
    np.testing.assert_allclose(centre[:3], 0, atol=1e-6)


def test_nifti_complex_and_unknown_spacing(tmp_path):
    image = _image(3)
    result = write_reconstruction(tmp_path / "c.nii", image, attrs=ATTRS, complex_values=True)
    assert any("identity affine" in n for n in result.notes)
    img = nib.load(tmp_path / "c.nii")
    np.testing.assert_array_equal(np.asarray(img.dataobj)[:, :, 0], image)
    np.testing.assert_array_equal(img.affine, np.eye(4))


def test_dicom_and_nifti_geometry_agree(fov_file, tmp_path):
    header = open_kspace(fov_file).header
    image = _image(4)
    write_reconstruction(tmp_path / "g.dcm", image, attrs=ATTRS, header=header)
    write_reconstruction(tmp_path / "g.nii", image, attrs=ATTRS, header=header)
    ds = pydicom.dcmread(tmp_path / "g.dcm")
    affine = nib.load(tmp_path / "g.nii").affine
    row_cos, col_cos = (
        np.array(ds.ImageOrientationPatient[:3]),
        np.array(ds.ImageOrientationPatient[3:]),
    )
    dr, dc = (float(v) for v in ds.PixelSpacing)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    for i, j in ((0, 0), (H - 1, 0), (3, W - 1)):
        lps = ipp + i * dr * col_cos + j * dc * row_cos  # DICOM: i down the rows, j along them
        ras = affine @ [i, j, 0, 1]
        np.testing.assert_allclose(lps * [-1, -1, 1], ras[:3], atol=1e-6)


def test_several_methods_one_file_each(fov_file, tmp_path):
    images = {"zero-filled": _image(5), "model:/x/modl-demo.safetensors": _image(6)}
    attrs = {k: {**ATTRS, "method": k} for k in images}
    header = open_kspace(fov_file).header
    result = write_reconstructions(tmp_path / "recons.dcm", images, attrs, header=header)
    assert [p.name for p in result.paths] == [
        "recons_zero-filled.dcm",
        "recons_model-modl-demo.dcm",
    ]
    sets = [pydicom.dcmread(p) for p in result.paths]
    assert sets[0].StudyInstanceUID == sets[1].StudyInstanceUID
    assert sets[0].FrameOfReferenceUID == sets[1].FrameOfReferenceUID
    assert sets[0].SeriesInstanceUID != sets[1].SeriesInstanceUID
    assert [int(d.SeriesNumber) for d in sets] == [1, 2]
    for ds, image in zip(sets, images.values(), strict=True):
        np.testing.assert_allclose(
            _rescaled(ds), np.abs(image), atol=float(ds.RescaleSlope) / 2 + 1e-9
        )
    nii = write_reconstructions(tmp_path / "recons.nii.gz", images, attrs, header=header)
    assert [p.name for p in nii.paths] == [
        "recons_zero-filled.nii.gz",
        "recons_model-modl-demo.nii.gz",
    ]
    for path, image in zip(nii.paths, images.values(), strict=True):
        np.testing.assert_array_equal(nib.load(path).get_fdata()[:, :, 0], np.abs(image))


def test_unknown_suffix_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(KSpaceWriteError, match="reconstructions export to"):
        write_reconstruction(tmp_path / "rec.png", _image())
    assert list(tmp_path.iterdir()) == []


def test_recon_cli_writes_dicom_and_nifti(fov_file, tmp_path, capsys):
    common = ["--method", "zero-filled", "--mask", "random", "--accel", "2", "--seed", "0"]
    outs = {s: tmp_path / f"rec{s}" for s in (".npy", ".dcm", ".nii", ".nii.gz")}
    for out in outs.values():
        assert main(["recon", str(fov_file), *common, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {outs['.dcm']} (DICOM MR Image {H}x{W} uint16" in printed
    magnitude = np.abs(np.load(outs[".npy"]))
    ds = pydicom.dcmread(outs[".dcm"])
    np.testing.assert_allclose(_rescaled(ds), magnitude, atol=float(ds.RescaleSlope) / 2 + 1e-9)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([4.0, 3.0])
    assert "zero-filled" in ds.SeriesDescription and str(ds.PatientName) == ""
    for suffix in (".nii", ".nii.gz"):
        img = nib.load(outs[suffix])
        np.testing.assert_array_equal(np.asarray(img.dataobj)[:, :, 0], magnitude)
        assert img.header.get_zooms() == pytest.approx((4.0, 3.0, 5.0))
    # an "auto" setting shows what it resolved to (CG-SENSE's lamda for this 1-D mask)
    cg = ["--method", "cg-sense", "--mask", "random", "--accel", "2", "--seed", "0"]
    assert main(["recon", str(fov_file), *cg, "--out", str(tmp_path / "cg.dcm")]) == 0
    description = pydicom.dcmread(tmp_path / "cg.dcm").SeriesDescription
    assert description.startswith("cg-sense lamda=auto(0.003) max_iter=15 tol=1e-06")
    assert "resolved" not in description
    assert main(["recon", str(fov_file), *common, "--out", str(tmp_path / "rec.png")]) != 0
    assert "--out must end in .h5, .npy, .dcm, .nii or .nii.gz" in capsys.readouterr().err


def test_ismrmrd_header_gives_pixel_spacing(tmp_path):
    from tests.core.io.test_io_readers import random_kspace, write_ismrmrd

    path = write_ismrmrd(tmp_path / "mrd.h5", random_kspace((1, 3, 16, 10)))
    header = open_kspace(path).header  # the test XML: FOV 200 x 200 x 5 mm
    geo = geometry_from_header(header, (16, 10))
    assert geo.spacing_mm == pytest.approx((200 / 16, 200 / 10))
    assert geo.slice_thickness_mm == 5.0


def test_a_models_outputs_name_its_weights_by_hash_and_dicom_keeps_a_short_description(
    fov_file, tmp_path, capsys
):
    """A model's settings carry the SHA-256 of its weights (``model:dense`` means other weights
    after a retraining), and DICOM's 64-character SeriesDescription keeps the scalars (no path,
    no nested architecture, which stay in ImageComments)."""
    import hashlib

    from mriviewer.core.checkpoints import ModelCard, save_model
    from mriviewer.core.compare import get_method
    from mriviewer.core.models import MoDL

    weights = tmp_path / "tiny.safetensors"
    card = ModelCard(strategy={"name": "e2e", "unrolls": 1}, training_data={}, mask={},
                     accelerations=[2.0], loss="l1")  # fmt: skip
    save_model(weights, MoDL(num_unrolls=1, features=4, cg_iters=2), card)
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert get_method(f"model:{weights}").settings()["sha256"] == sha[:16]
    out = tmp_path / "m.dcm"
    args = ["recon", str(fov_file), "--method", f"model:{weights}", "--accel", "2", "--out"]
    assert main([*args, str(out)]) == 0
    ds = pydicom.dcmread(out)
    assert ds.SeriesDescription == f"model:{weights} sha256={sha[:16]} unrolls=1"[:64]
    assert "path=" not in ds.SeriesDescription and "architecture" not in ds.SeriesDescription
    assert f"sha256={sha[:16]}" in ds.ImageComments and "architecture=" in ds.ImageComments
