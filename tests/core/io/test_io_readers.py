"""Round trips for every k-space format: write with the format's natural writer, read back with
open_kspace, convert to fastMRI HDF5 and check the content; content sniffing; real files."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from mriviewer.core.errors import KSpaceReadError
from mriviewer.core.io import detect_format, open_kspace, write_fastmri
from mriviewer.core.physics.fft import ifft2c_np, rss

# --------------------------------------------------------------------------------------------
# Natural writers (also used by test_io_errors.py)
# --------------------------------------------------------------------------------------------


def random_kspace(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random complex64 k-space of ``shape`` (no zeros, so 'fully sampled')."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def write_bart(base: Path, array: np.ndarray) -> tuple[Path, Path]:
    """BART's own python/cfl.py writecfl: header of dims, complex64 column-major data."""
    base = Path(base)
    dims = list(array.shape) + [1] * (16 - array.ndim)
    base.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")
    np.asarray(array, np.complex64).ravel(order="F").tofile(base.with_suffix(".cfl"))
    return base.with_suffix(".hdr"), base.with_suffix(".cfl")


def bart_from_slices(kspace: np.ndarray) -> np.ndarray:
    """(S, C, H, W) -> BART [RO=H, PE1=W, PE2=1, COIL=C, 1 x 9, SLICE=S] array."""
    s, c, h, w = kspace.shape
    out = np.zeros((h, w, 1, c) + (1,) * 9 + (s,), np.complex64)
    out[:, :, 0, :, 0, 0, 0, 0, 0, 0, 0, 0, 0, :] = kspace.transpose(2, 3, 1, 0)
    return out


MAT73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Sat Nov 21 00:00:00 2026 HDF5 "
    b"schema 1.00 ."
)


def write_mat73(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """A MATLAB v7.3 file as MATLAB writes it: 512-byte userblock with the text header, axes
    reversed, complex as a {real, imag} compound, MATLAB_class attributes."""
    with h5py.File(path, "w", userblock_size=512) as h5:
        for name, value in variables.items():
            value = np.asarray(value)
            stored = value.T  # MATLAB is column-major: h5py sees the axes reversed
            if np.iscomplexobj(value):
                base = np.float32 if value.dtype == np.complex64 else np.float64
                compound = np.dtype([("real", base), ("imag", base)])
                data = np.empty(stored.shape, compound)
                data["real"], data["imag"] = stored.real, stored.imag
                cls = "single" if base == np.float32 else "double"
            else:
                data = stored
                cls = "double" if value.dtype == np.float64 else "single"
            ds = h5.create_dataset(name, data=data)
            ds.attrs["MATLAB_class"] = np.bytes_(cls)
    header = MAT73_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(header)
    return path


# ISMRMRD acquisition layout (ismrmrd-python, ismrmrd/hdf5.py), built with h5py directly.
ENCODING_COUNTERS = np.dtype(
    [
        ("kspace_encode_step_1", "<u2"),
        ("kspace_encode_step_2", "<u2"),
        ("average", "<u2"),
        ("slice", "<u2"),
        ("contrast", "<u2"),
        ("phase", "<u2"),
        ("repetition", "<u2"),
        ("set", "<u2"),
        ("segment", "<u2"),
        ("user", "<u2", (8,)),
    ]
)
ACQ_HEADER = np.dtype(
    [
        ("version", "<u2"),
        ("flags", "<u8"),
        ("measurement_uid", "<u4"),
        ("scan_counter", "<u4"),
        ("acquisition_time_stamp", "<u4"),
        ("physiology_time_stamp", "<u4", (3,)),
        ("number_of_samples", "<u2"),
        ("available_channels", "<u2"),
        ("active_channels", "<u2"),
        ("channel_mask", "<u8", (16,)),
        ("discard_pre", "<u2"),
        ("discard_post", "<u2"),
        ("center_sample", "<u2"),
        ("encoding_space_ref", "<u2"),
        ("trajectory_dimensions", "<u2"),
        ("sample_time_us", "<f4"),
        ("position", "<f4", (3,)),
        ("read_dir", "<f4", (3,)),
        ("phase_dir", "<f4", (3,)),
        ("slice_dir", "<f4", (3,)),
        ("patient_table_position", "<f4", (3,)),
        ("idx", ENCODING_COUNTERS),
        ("user_int", "<i4", (8,)),
        ("user_float", "<f4", (8,)),
    ]
)
ACQUISITION = np.dtype(
    [
        ("head", ACQ_HEADER),
        ("traj", h5py.vlen_dtype(np.float32)),
        ("data", h5py.vlen_dtype(np.float32)),
    ]
)
FLAG_NOISE, FLAG_CALIBRATION, FLAG_NAVIGATION = 19, 20, 23


def mrd_xml(
    nx: int,
    ny: int,
    rx: int,
    ry: int,
    trajectory: str = "cartesian",
    center: int | None = None,
    nz: int = 1,
) -> str:
    """A small MRD XML header: encoded (nx readout, ny lines, nz partitions), recon (rx, ry),
    ky centre ``center`` (default ny/2)."""
    center = ny // 2 if center is None else center
    return (
        '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
        "<measurementInformation><protocolName>test_gre</protocolName></measurementInformation>"
        "<acquisitionSystemInformation><systemVendor>TestVendor</systemVendor>"
        "<systemFieldStrength_T>3.0</systemFieldStrength_T></acquisitionSystemInformation>"
        f"<encoding><encodedSpace><matrixSize><x>{nx}</x><y>{ny}</y><z>{nz}</z></matrixSize>"
        "<fieldOfView_mm><x>200</x><y>200</y><z>5</z></fieldOfView_mm></encodedSpace>"
        f"<reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize>"
        "<fieldOfView_mm><x>200</x><y>200</y><z>5</z></fieldOfView_mm></reconSpace>"
        f"<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{ny - 1}"
        f"</maximum><center>{center}</center></kspace_encoding_step_1></encodingLimits>"
        f"<trajectory>{trajectory}</trajectory></encoding></ismrmrdHeader>"
    )


def acquisition(
    data: np.ndarray,
    ky: int = 0,
    slice_: int = 0,
    flags: int = 0,
    average: int = 0,
    kz: int = 0,
) -> np.ndarray:
    """One acquisition row (a length-1 table); ``data`` is (coils, samples) complex."""
    coils, samples = data.shape
    row = np.zeros((1,), ACQUISITION)
    head = np.zeros((), ACQ_HEADER)
    head["version"] = 1
    head["flags"] = flags
    head["number_of_samples"] = samples
    head["available_channels"] = coils
    head["active_channels"] = coils
    head["center_sample"] = samples // 2
    head["idx"]["kspace_encode_step_1"] = ky
    head["idx"]["kspace_encode_step_2"] = kz
    head["idx"]["slice"] = slice_
    head["idx"]["average"] = average
    row[0]["head"] = head
    row[0]["traj"] = np.zeros(0, np.float32)
    row[0]["data"] = np.ascontiguousarray(data, np.complex64).view(np.float32).ravel()
    return row


def flag_bits(*bits: int) -> int:
    return sum(1 << (b - 1) for b in bits)


def write_ismrmrd(
    path: Path,
    kspace: np.ndarray,
    lines: list[int] | None = None,
    noise: bool = False,
    shuffle: bool = True,
    recon: tuple[int, int] | None = None,
    xml: str | None = None,
    extra_rows: list[np.ndarray] | None = None,
) -> Path:
    """An ISMRMRD file of ``kspace`` (S, C, H=readout, W=lines): with ``noise``, a noise scan and
    a navigator first (the navigator is skipped; the noise gives the noise covariance), then one
    acquisition per (slice, acquired line), shuffled."""
    s, c, h, w = kspace.shape
    rng = np.random.default_rng(1)
    rows = []
    if noise:
        rows.append(acquisition(random_kspace((c, 2 * h), 5) * 1e3, flags=flag_bits(FLAG_NOISE)))
        rows.append(acquisition(random_kspace((c, h), 6) * 1e3, flags=flag_bits(FLAG_NAVIGATION)))
    acquired = range(w) if lines is None else lines
    imaging = [acquisition(kspace[sl, :, :, ky], ky, sl) for sl in range(s) for ky in acquired]
    if shuffle:
        imaging = [imaging[i] for i in rng.permutation(len(imaging))]
    rows += imaging + list(extra_rows or [])
    rx, ry = recon or (h, w)
    with h5py.File(path, "w") as h5:
        grp = h5.create_group("dataset")
        grp.create_dataset("xml", shape=(1,), dtype=h5py.string_dtype())
        grp["xml"][0] = xml if xml is not None else mrd_xml(h, w, rx, ry)
        table = np.concatenate(rows) if rows else np.zeros(0, ACQUISITION)
        grp.create_dataset("data", data=table, maxshape=(None,))
    return path


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------

SHAPE = (2, 3, 12, 10)  # (slices, coils, H, W)


def check_volume(volume, kspace: np.ndarray, fmt: str) -> None:
    assert volume.format == fmt
    assert volume.num_slices == kspace.shape[0]
    assert volume.num_coils == kspace.shape[1]
    assert volume.matrix == kspace.shape[2:]
    for k in range(kspace.shape[0]):
        got = volume.read_kspace(k)
        assert got.dtype == np.complex64 and got.shape == kspace.shape[1:]
        np.testing.assert_allclose(got, kspace[k], rtol=1e-6, atol=1e-6)


def check_converted(tmp_path: Path, source: Path, kspace: np.ndarray, **options) -> None:
    """convert_volume to fastMRI HDF5, then read the raw datasets back with h5py."""
    from mriviewer.commands.convert import convert_volume

    out = tmp_path / "converted.h5"
    done = convert_volume(open_kspace(source, **options), out)
    assert done["slices"] == kspace.shape[0]
    with h5py.File(out, "r") as h5:
        np.testing.assert_allclose(h5["kspace"][()], kspace, rtol=1e-6, atol=1e-6)
        ref = h5["reconstruction_rss"][()]
    expected = np.stack([rss(ifft2c_np(kspace[i])) for i in range(kspace.shape[0])])
    np.testing.assert_allclose(ref, expected, rtol=1e-4, atol=1e-5)
    assert detect_format(out) == "fastmri-h5"


def test_npy_round_trip_and_convert(tmp_path):
    kspace = random_kspace(SHAPE)
    path = tmp_path / "k.npy"
    np.save(path, kspace)
    check_volume(open_kspace(path), kspace, "npy")
    check_volume(open_kspace(path, slice=1), kspace, "npy")
    assert open_kspace(path, slice=1).slice_index == 1
    check_converted(tmp_path, path, kspace)


@pytest.mark.parametrize(
    ("shape", "axes", "as_slices"),
    [
        ((12, 10), None, lambda a: a[None, None]),
        ((3, 12, 10), None, lambda a: a[None]),
        ((12, 10, 3), "HWC", lambda a: a.transpose(2, 0, 1)[None]),
        ((12, 10, 2, 3), "HWSC", lambda a: a.transpose(2, 3, 0, 1)),
    ],
)
def test_npy_layouts(tmp_path, shape, axes, as_slices):
    array = random_kspace(shape)
    path = tmp_path / "k.npy"
    np.save(path, array)
    options = {"axes": axes} if axes else {}
    kspace = as_slices(array)
    check_volume(open_kspace(path, **options), kspace, "npy")


def test_npz_picks_kspace_by_name_only_complex_or_variable(tmp_path):
    kspace = random_kspace(SHAPE)
    other = random_kspace((3, 8, 8), seed=3)
    named = tmp_path / "named.npz"
    np.savez(named, ksp=kspace, mask=np.ones((12, 10), bool), other=other)
    check_volume(open_kspace(named), kspace, "npz")
    assert open_kspace(named).header["variable"] == "ksp"
    only = tmp_path / "only.npz"
    np.savez_compressed(only, data=kspace, mask=np.ones((12, 10), bool))
    check_volume(open_kspace(only), kspace, "npz")
    picked = open_kspace(named, variable="other")
    np.testing.assert_array_equal(picked.read_kspace(0), other)
    check_converted(tmp_path, named, kspace)


def test_npz_with_several_complex_arrays_asks_for_variable(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, a=random_kspace((2, 4, 4)), b=random_kspace((2, 4, 4)))
    with pytest.raises(KSpaceReadError, match=r"several complex arrays \(a, b\).*--variable"):
        open_kspace(path)


def test_mat5_round_trip_variable_and_axes(tmp_path):
    kspace = random_kspace(SHAPE)
    path = tmp_path / "k.mat"
    scipy.io.savemat(path, {"kspace": kspace, "hwc": kspace[0].transpose(1, 2, 0), "x": 1.0})
    assert detect_format(path) == "matlab"
    check_volume(open_kspace(path), kspace, "matlab")
    hwc = open_kspace(path, variable="hwc", axes="HWC")
    np.testing.assert_array_equal(hwc.kspace, kspace[0])
    check_converted(tmp_path, path, kspace)


def test_mat4_detected_by_header_and_name(tmp_path):
    single = random_kspace((12, 10)).astype(np.complex128)
    path = tmp_path / "k4.mat"
    scipy.io.savemat(path, {"kspace": single}, format="4")
    assert detect_format(path) == "matlab-v4"
    np.testing.assert_allclose(open_kspace(path).kspace[0], single, rtol=1e-6)


def test_mat73_round_trip(tmp_path):
    kspace = random_kspace(SHAPE)
    path = tmp_path / "k73.mat"
    write_mat73(path, {"kspace": kspace, "scale": np.array([[2.0]])})
    assert open(path, "rb").read(10) == b"MATLAB 7.3"
    assert detect_format(path) == "matlab-v7.3"
    volume = open_kspace(path)
    check_volume(volume, kspace, "matlab")
    assert volume.header["mat_version"] == 7.3 and volume.header["matlab_class"] == "single"
    check_converted(tmp_path, path, kspace)


def test_mat73_double_and_variable(tmp_path):
    kspace = random_kspace((3, 12, 10)).astype(np.complex128)
    path = tmp_path / "d.mat"
    write_mat73(path, {"a": kspace, "b": kspace * 2})
    volume = open_kspace(path, variable="b")
    np.testing.assert_allclose(volume.kspace, kspace * 2, rtol=1e-6)


@pytest.mark.parametrize("given", [".hdr", ".cfl"])
def test_bart_round_trip_either_file(tmp_path, given):
    kspace = random_kspace(SHAPE)
    hdr, cfl = write_bart(tmp_path / "ksp", bart_from_slices(kspace))
    path = hdr if given == ".hdr" else cfl
    assert detect_format(path) == "bart"
    volume = open_kspace(path)
    check_volume(volume, kspace, "bart")
    assert volume.header["bart_named_dims"] == {"READ": 12, "PHS1": 10, "COIL": 3, "SLICE": 2}
    check_converted(tmp_path, path, kspace)


def test_bart_partitions_fft_or_slices(tmp_path):
    """A 3-D [RO, PE1, PE2, COIL] file: partitions become slices after a centred iFFT."""
    volume3d = random_kspace((12, 10, 4, 3))
    hdr, _ = write_bart(tmp_path / "k3d", volume3d)
    hybrid = np.fft.fftshift(
        np.fft.ifft(np.fft.ifftshift(volume3d, axes=2), axis=2, norm="ortho"), axes=2
    )
    volume = open_kspace(hdr)
    assert volume.num_slices == 4 and volume.num_coils == 3
    for p in range(4):
        np.testing.assert_allclose(
            volume.read_kspace(p), hybrid[:, :, p, :].transpose(2, 0, 1), atol=1e-5
        )
    raw = open_kspace(hdr, partitions="slices")
    np.testing.assert_array_equal(raw.read_kspace(2), volume3d[:, :, 2, :].transpose(2, 0, 1))


def test_ismrmrd_round_trip_skips_noise_and_places_lines(tmp_path):
    kspace = random_kspace(SHAPE)
    path = write_ismrmrd(tmp_path / "mrd.h5", kspace, recon=(6, 10), noise=True)
    assert detect_format(path) == "ismrmrd-h5"
    raw = open_kspace(path, prewhiten=False)
    check_volume(raw, kspace, "ismrmrd-h5")
    # The noise acquisition (random_kspace((3, 24), 5) * 1e3) gives the covariance; by default
    # the k-space is prewhitened with it.
    noise = random_kspace((3, 24), 5).astype(np.complex128) * 1e3
    expected_psi = noise @ noise.conj().T / 24
    volume = open_kspace(path)
    np.testing.assert_allclose(volume.noise_covariance, expected_psi, rtol=1e-5)
    from mriviewer.core.physics.noise import prewhiten

    np.testing.assert_allclose(
        volume.read_kspace(1), prewhiten(kspace[1], expected_psi), rtol=1e-4, atol=1e-5
    )
    assert volume.header["noise_acquisitions"] == 1 and volume.header["noise_samples"] == 24
    volume = raw
    assert volume.recon_matrix == (6, 10)
    assert volume.header["skipped_acquisitions"] == {"navigator": 1}
    assert volume.header["acquisition"] == "test_gre"
    assert volume.header["field_strength_t"] == 3.0
    from mriviewer.commands.convert import convert_volume

    out = tmp_path / "from_mrd.h5"
    convert_volume(volume, out)
    converted = open_kspace(out)
    assert converted.recon_matrix == (6, 10)
    np.testing.assert_allclose(converted.read_kspace(1), kspace[1], atol=1e-6)
    assert converted.reference.shape == (6, 10)


def test_ismrmrd_undersampled_lines_calibration_and_averages(tmp_path):
    kspace = random_kspace((1, 2, 8, 12))
    lines = [0, 3, 6, 9]
    # ACS lines 5..6 flagged calibration-only: kept (same readout); line 9 acquired twice.
    acs = [acquisition(kspace[0, :, :, ky], ky, flags=flag_bits(FLAG_CALIBRATION)) for ky in (5,)]
    second = acquisition(kspace[0, :, :, 9] + 2.0, 9, average=1)
    path = write_ismrmrd(tmp_path / "us.h5", kspace, lines=lines, extra_rows=acs + [second])
    volume = open_kspace(path)
    got = volume.kspace
    expected = np.zeros_like(kspace[0])
    for ky in (0, 3, 5, 6):
        expected[:, :, ky] = kspace[0, :, :, ky]
    expected[:, :, 9] = kspace[0, :, :, 9] + 1.0  # mean of the two averages
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert volume.header["calibration_lines"] == 1


def test_sniffers_do_not_confuse_hdf5_layouts(tmp_path):
    kspace = random_kspace(SHAPE)
    fast = write_fastmri(tmp_path / "fast.h5", kspace)
    mrd = write_ismrmrd(tmp_path / "mrd.h5", kspace)
    mat = write_mat73(tmp_path / "m.mat", {"kspace": kspace})
    assert detect_format(fast) == "fastmri-h5"
    assert detect_format(mrd) == "ismrmrd-h5"
    assert detect_format(mat) == "matlab-v7.3"
    # Content wins over the extension.
    lying = tmp_path / "actually_npy.mat"
    np.save(tmp_path / "x.npy", kspace)
    (tmp_path / "x.npy").rename(lying)
    assert detect_format(lying) == "npy"
    renamed = tmp_path / "mrd_named.dat"
    mrd.rename(renamed)
    assert detect_format(renamed) == "ismrmrd-h5"


# --------------------------------------------------------------------------------------------
# Real data from ../shared/data
# --------------------------------------------------------------------------------------------


def test_real_twix_gre_phantom(shared_data):
    pytest.importorskip("twixtools")
    path = shared_data / "siemens_twix_phantom" / "gre.dat"
    assert detect_format(path) == "twix"
    volume = open_kspace(path)
    assert (volume.num_slices, volume.num_coils, volume.matrix) == (1, 2, (160, 160))
    k = volume.kspace
    # The echo peak is central in both axes, and lines run along W: compare with twixtools.
    energy = np.abs(k).sum(axis=0)
    peak = np.unravel_index(energy.argmax(), energy.shape)
    assert abs(peak[0] - 80) <= 2 and abs(peak[1] - 80) <= 2
    import twixtools

    image = twixtools.map_twix(str(path), verbose=False)[-1]["image"]
    image.flags["remove_os"] = True
    direct = np.squeeze(image[:])  # (lines, coils, readout)
    np.testing.assert_allclose(k, direct.transpose(1, 2, 0), rtol=1e-6)
    assert volume.header["readout_oversampling_removed"] is True


def test_real_npy_sigpy_brain(shared_data):
    path = shared_data / "brain8ch_undersampled_sigpy" / "cartesian_ksp.npy"
    volume = open_kspace(path)
    assert volume.format == "npy"
    assert (volume.num_slices, volume.num_coils, volume.matrix) == (1, 8, (230, 180))
    fraction = np.mean(np.any(volume.kspace != 0, axis=0))
    assert 0.05 < fraction < 0.2  # about 12% of samples are non-zero


def test_twix_without_twixtools_says_which_extra(tmp_path, monkeypatch):
    path = tmp_path / "meas.dat"
    # A VD/VE raid-file table: 0, one scan, then (measID, fileID, offset=10240, length).
    head = np.array([0, 1, 7, 1], "<u4").tobytes() + np.array([10240, 512], "<u8").tobytes()
    path.write_bytes(head.ljust(10240 + 512, b"\x00"))
    monkeypatch.setitem(sys.modules, "twixtools", None)
    with pytest.raises(KSpaceReadError, match=r"meas\.dat: .*mriviewer\[twix\]"):
        open_kspace(path)


@pytest.mark.parametrize("xml_layout", ["scalar", "absent"])
def test_ismrmrd_xml_variants(tmp_path, xml_layout):
    kspace = random_kspace((1, 2, 8, 8))
    path = write_ismrmrd(tmp_path / "mrd.h5", kspace)
    with h5py.File(path, "a") as h5:
        del h5["dataset/xml"]
        if xml_layout == "scalar":
            h5["dataset"].create_dataset("xml", data=mrd_xml(8, 8, 4, 8))
    volume = open_kspace(path)
    assert volume.recon_matrix == ((4, 8) if xml_layout == "scalar" else (8, 8))
    np.testing.assert_array_equal(volume.kspace, kspace[0])


def test_ismrmrd_partial_fourier_lines_are_centred(tmp_path):
    """Encoding limits centre 2 of 8 lines: step-1 index 2 is k-space centre (matrix line 4)."""
    kspace = random_kspace((1, 2, 8, 8))
    rows = [acquisition(kspace[0, :, :, ky + 2], ky) for ky in range(6)]
    path = write_ismrmrd(
        tmp_path / "pf.h5",
        kspace[:, :, :, :0],
        lines=[],
        extra_rows=rows,
        xml=mrd_xml(8, 8, 8, 8, center=2),
    )
    volume = open_kspace(path)
    assert volume.matrix == (8, 8)
    expected = kspace[0].copy()
    expected[:, :, :2] = 0
    np.testing.assert_allclose(volume.kspace, expected, atol=1e-6)


def test_ismrmrd_3d_partitions_become_slices(tmp_path):
    volume3d = random_kspace((2, 8, 8, 4))  # (coils, kx, ky, kz)
    rows = [acquisition(volume3d[:, :, ky, kz], ky, kz=kz) for kz in range(4) for ky in range(8)]
    path = write_ismrmrd(
        tmp_path / "3d.h5",
        volume3d[None, :, :, :0, 0],
        lines=[],
        extra_rows=rows,
        xml=mrd_xml(8, 8, 8, 8, nz=4),
    )
    volume = open_kspace(path)
    assert volume.num_slices == 4 and volume.header["partitions"] == 4
    hybrid = np.fft.fftshift(
        np.fft.ifft(np.fft.ifftshift(volume3d, axes=3), axis=3, norm="ortho"), axes=3
    )
    for z in range(4):
        np.testing.assert_allclose(volume.read_kspace(z), hybrid[..., z], atol=1e-5)


def test_bart_file_named_without_extension(tmp_path):
    from mriviewer.core.io import open_kspace

    kspace = random_kspace((4, 16, 12))
    write_bart(tmp_path / "case", kspace[..., None].transpose(1, 2, 3, 0))
    volume = open_kspace(tmp_path / "case")
    assert volume.format == "bart" and volume.num_coils == 4
