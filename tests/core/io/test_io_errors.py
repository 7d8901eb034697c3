"""Bad input for every reader: each failure raises KSpaceReadError naming the file and the
problem (never a bare KeyError/IndexError traceback); random bytes never escape as anything but
MriViewerError."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mriviewer.core.errors import KSpaceReadError, MriViewerError
from mriviewer.core.io import open_kspace
from tests.conftest import SHARED_DATA  # noqa: E402
from tests.core.io.test_io_readers import (  # noqa: E402
    ACQUISITION,
    FLAG_NOISE,
    acquisition,
    bart_from_slices,
    flag_bits,
    mrd_xml,
    random_kspace,
    write_bart,
    write_ismrmrd,
    write_mat73,
)

GOOD = random_kspace((2, 3, 8, 8))


def with_nan(array: np.ndarray) -> np.ndarray:
    out = array.copy()
    out[0, 0, 1, 1] = np.nan + 1j * np.inf
    return out


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# --- one factory per (reader, failure kind): builds the bad file, returns the path to open ----


def npy(array) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        np.save(tmp / "k.npy", array)
        return tmp / "k.npy"

    return make


def npz(**arrays) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        np.savez(tmp / "k.npz", **arrays)
        return tmp / "k.npz"

    return make


def mat5(**variables) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        scipy.io.savemat(tmp / "k.mat", variables)
        return tmp / "k.mat"

    return make


def mat73(**variables) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        return write_mat73(tmp / "k73.mat", variables)

    return make


def fastmri(kspace) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        with h5py.File(tmp / "f.h5", "w") as h5:
            h5.create_dataset("kspace", data=kspace)
        return tmp / "f.h5"

    return make


def bart(array, hdr_text: str | None = None) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        hdr, _ = write_bart(tmp / "b", array)
        if hdr_text is not None:
            hdr.write_text(hdr_text)
        return hdr

    return make


def ismrmrd_rows(rows, xml: str | None = None) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "mrd.h5"
        with h5py.File(path, "w") as h5:
            grp = h5.create_group("dataset")
            grp.create_dataset("xml", shape=(1,), dtype=h5py.string_dtype())
            grp["xml"][0] = xml or mrd_xml(8, 8, 8, 8)
            table = np.concatenate(rows) if rows else np.zeros(0, ACQUISITION)
            grp.create_dataset("data", data=table, maxshape=(None,))
        return path

    return make


def then(make: Callable[[Path], Path], damage: Callable[[Path], Path]) -> Callable[[Path], Path]:
    return lambda tmp: damage(make(tmp))


def ismrmrd_mismatched_payload(tmp: Path) -> Path:
    row = acquisition(GOOD[0, :, :, 0], 0)
    row[0]["data"] = row[0]["data"][:10]  # fewer floats than coils x samples
    return ismrmrd_rows([row])(tmp)


def ismrmrd_no_data(tmp: Path) -> Path:
    with h5py.File(tmp / "mrd.h5", "w") as h5:
        grp = h5.create_group("dataset")
        grp.create_dataset("xml", shape=(1,), dtype=h5py.string_dtype())
        grp["xml"][0] = mrd_xml(8, 6, 8, 6)
    return tmp / "mrd.h5"


def bart_missing_cfl(tmp: Path) -> Path:
    hdr, cfl = write_bart(tmp / "b", bart_from_slices(GOOD))
    cfl.unlink()
    return hdr


def twix_garbage(tmp: Path) -> Path:
    pytest.importorskip("twixtools")
    path = tmp / "meas.dat"
    head = np.array([0, 1, 7, 1], "<u4").tobytes() + np.array([1024, 4096], "<u8").tobytes()
    rng = np.random.default_rng(0)
    path.write_bytes(head.ljust(1024, b"\x00") + rng.bytes(4096))
    return path


def twix_truncated(tmp: Path) -> Path:
    pytest.importorskip("twixtools")
    source = SHARED_DATA / "siemens_twix_phantom" / "gre.dat"
    if not source.is_file():
        pytest.skip(f"{source} is absent (shared MRI data only exists beside the repo)")
    path = tmp / "gre.dat"
    path.write_bytes(source.read_bytes()[:12000])
    return path


def mat5_bad_imaginary_type(tmp: Path) -> Path:
    """The corruption that crashes scipy's compiled MAT reader: an invalid imaginary-part type."""
    path = mat5(kspace=GOOD.astype(np.complex128))(tmp)
    data = bytearray(path.read_bytes())
    tag = struct.pack("<II", 9, GOOD.size * 8)  # miDOUBLE, prod(dims) * 8 bytes
    imag_at = data.index(tag, data.index(tag) + 1)
    data[imag_at : imag_at + 4] = struct.pack("<I", 74)
    path.write_bytes(bytes(data))
    return path


COMPLEX_1D = random_kspace((8,))
COMPLEX_5D = random_kspace((1, 2, 2, 4, 4))
EMPTY = np.zeros((2, 0, 4), np.complex64)
REAL = np.abs(GOOD).astype(np.float32)

CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    # NumPy .npy
    "npy-truncated": (then(npy(GOOD), truncate), r"truncated \.npy file"),
    "npy-corrupt": (
        lambda t: (
            (t / "k.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{garbage!!!}\n") and t / "k.npy"
        ),
        r"corrupt \.npy header",
    ),
    "npy-rank": (npy(COMPLEX_1D), r"rank 1"),
    "npy-rank5": (npy(COMPLEX_5D), r"rank 5"),
    "npy-empty": (npy(EMPTY), r"empty"),
    "npy-nan": (npy(with_nan(GOOD)), r"NaN or Inf"),
    "npy-real": (npy(REAL), r"not complex"),
    "npy-objects": (
        lambda t: (
            np.save(t / "k.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
            or t / "k.npy"
        ),
        r"refusing to unpickle",
    ),
    "npy-zeros": (npy(np.zeros((2, 8, 8), np.complex64)), r"all zeros"),
    # NumPy .npz
    "npz-truncated": (then(npz(kspace=GOOD), truncate), r"truncated or corrupt \.npz"),
    "npz-missing-variable": (npz(mask=np.ones(3)), r"no complex array \(variables: mask\)"),
    "npz-rank": (npz(kspace=COMPLEX_1D), r"rank 1"),
    "npz-empty": (npz(kspace=EMPTY), r"empty"),
    "npz-nan": (npz(kspace=with_nan(GOOD)), r"NaN or Inf"),
    "npz-real": (npz(kspace=REAL), r"not complex"),
    # MATLAB v5
    "mat5-truncated": (then(mat5(kspace=GOOD), truncate), r"truncated MATLAB file"),
    "mat5-missing-variable": (mat5(x=np.ones(3)), r"no complex array"),
    "mat5-rank": (mat5(kspace=COMPLEX_5D), r"rank 5"),
    "mat5-empty": (mat5(kspace=EMPTY), r"empty"),
    "mat5-nan": (mat5(kspace=with_nan(GOOD)), r"NaN or Inf"),
    "mat5-real": (mat5(kspace=REAL), r"not complex"),
    "mat5-bad-imaginary-type": (mat5_bad_imaginary_type, r"corrupt MATLAB file: imaginary part"),
    "mat5-cell": (
        mat5(kspace=np.array([[GOOD[0], 1]], dtype=object)),
        r"no numeric array \(variables: kspace \(cell array\)\)",
    ),
    # MATLAB v7.3
    "mat73-truncated": (then(mat73(kspace=GOOD), truncate), r"truncated or corrupt"),
    "mat73-missing-variable": (mat73(x=np.ones((2, 2))), r"no complex array"),
    "mat73-rank": (mat73(kspace=COMPLEX_5D), r"rank 5"),
    "mat73-empty": (mat73(kspace=EMPTY), r"empty"),
    "mat73-nan": (mat73(kspace=with_nan(GOOD)), r"NaN or Inf"),
    "mat73-real": (mat73(kspace=REAL.astype(np.float64)), r"not complex"),
    # BART
    "bart-truncated": (
        then(bart(bart_from_slices(GOOD)), lambda p: truncate(p.with_suffix(".cfl")) and p),
        r"truncated",
    ),
    "bart-missing-cfl": (bart_missing_cfl, r"missing BART data file b\.cfl"),
    "bart-corrupt-hdr": (
        bart(bart_from_slices(GOOD), "# Dimensions\n8 six 1 3\n"),
        r"not integers",
    ),
    "bart-no-dims": (bart(bart_from_slices(GOOD), "# Dimensions\n"), r"no dimensions"),
    "bart-zero-dim": (bart(bart_from_slices(GOOD), "# Dimensions\n8 0 1 3\n"), r"must be positive"),
    "bart-nan": (bart(bart_from_slices(with_nan(GOOD))), r"NaN or Inf"),
    # ISMRMRD
    "ismrmrd-truncated": (
        then(lambda t: write_ismrmrd(t / "mrd.h5", GOOD), truncate),
        r"truncated or corrupt HDF5",
    ),
    "ismrmrd-no-data": (ismrmrd_no_data, r"no 'data' \(acquisitions\)"),
    "ismrmrd-no-acquisitions": (ismrmrd_rows([]), r"no acquisitions"),
    "ismrmrd-only-noise": (
        ismrmrd_rows([acquisition(GOOD[0, :, :, 0], flags=flag_bits(FLAG_NOISE))]),
        r"no imaging acquisitions in the file \(only 1 noise\)",
    ),
    "ismrmrd-corrupt-payload": (ismrmrd_mismatched_payload, r"truncated or corrupt"),
    "ismrmrd-bad-xml": (
        ismrmrd_rows([acquisition(GOOD[0, :, :, 0])], xml="<ismrmrdHeader>"),
        r"not valid XML",
    ),
    "ismrmrd-spiral": (
        ismrmrd_rows([acquisition(GOOD[0, :, :, 0])], xml=mrd_xml(8, 6, 8, 6, "spiral")),
        r"only Cartesian",
    ),
    "ismrmrd-nan": (lambda t: write_ismrmrd(t / "mrd.h5", with_nan(GOOD)), r"NaN or Inf"),
    # fastMRI
    "fastmri-truncated": (
        then(fastmri(GOOD), lambda p: truncate(p, 0.3)),
        r"truncated or corrupt HDF5",
    ),
    "fastmri-missing-kspace": (
        lambda t: h5py.File(t / "f.h5", "w").close() or t / "f.h5",
        r"neither fastMRI .* it holds: nothing",
    ),
    "fastmri-rank": (fastmri(random_kspace((2, 3, 4, 4, 4))), r"rank 5"),
    "fastmri-empty": (fastmri(np.zeros((0, 3, 4, 4), np.complex64)), r"empty"),
    "fastmri-nan": (fastmri(with_nan(GOOD)), r"NaN or Inf"),
    "fastmri-real": (fastmri(REAL), r"not complex"),
    # TWIX
    "twix-corrupt": (twix_garbage, r"truncated or corrupt TWIX file"),
    "twix-truncated": (twix_truncated, r"truncated or corrupt TWIX file"),
    # Any format
    "missing-file": (lambda t: t / "nope.h5", r"file not found"),
    "directory": (lambda t: t, r"is a directory"),
    "zero-bytes": (lambda t: (t / "e.npy").write_bytes(b"") or t / "e.npy", r"empty \(0 bytes\)"),
    "unknown-format": (
        lambda t: (t / "notes.txt").write_text("hello, not k-space") and t / "notes.txt",
        r"unrecognised file format",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_named_error(tmp_path, case):
    make, problem = CASES[case]
    path = make(tmp_path)
    with pytest.raises(KSpaceReadError) as info:
        open_kspace(path)
    message = str(info.value)
    assert re.search(problem, message), message
    named = Path(info.value.path)
    assert named == path or named.parent == path.parent or named == path.parent, message
    assert message.startswith(str(info.value.path))


@pytest.mark.parametrize(
    ("make", "options", "problem"),
    [
        (npz(a=GOOD), {"variable": "b"}, r"no variable 'b' in \.npz archive; it holds: a"),
        (mat5(a=GOOD), {"variable": "b"}, r"no variable 'b' in MATLAB file; it holds: a"),
        (mat73(a=GOOD), {"variable": "b"}, r"no variable 'b'"),
        (
            mat5(k=GOOD, c=np.array([[1, "x"]], dtype=object)),
            {"variable": "c"},
            r"variable 'c' is a MATLAB cell array",
        ),
        (npy(GOOD), {"variable": "b"}, r"single array"),
        (npy(GOOD), {"axes": "CHX"}, r"axes='CHX' does not fit"),
        (npy(GOOD), {"bogus": 1}, r"does not take option\(s\) bogus"),
        (bart(bart_from_slices(GOOD)), {"variable": "x"}, r"does not take option"),
        (fastmri(GOOD), {"variable": "x"}, r"takes no options"),
    ],
)
def test_bad_options_raise_named_error(tmp_path, make, options, problem):
    path = make(tmp_path)
    with pytest.raises(KSpaceReadError, match=problem) as info:
        open_kspace(path, **options)
    assert info.value.path is not None


def test_slice_out_of_range(tmp_path):
    path = npy(GOOD)(tmp_path)
    with pytest.raises(KSpaceReadError, match=r"slice 5 out of range: the file has 2 slice"):
        open_kspace(path, slice=5)


# --- random bytes never raise anything but MriViewerError -------------------------------------

PREFIXES = {
    "none": b"",
    "hdf5": b"\x89HDF\r\n\x1a\n",
    "npy": b"\x93NUMPY",
    "mat5": b"MATLAB 5.0 MAT-file, Platform: GLNXA64".ljust(116, b" ")
    + b"\x00" * 8
    + b"\x00\x01IM",
    "mat73": b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM",
    "bart": b"# Dimensions\n",
    "zip": b"PK\x03\x04",
}
SUFFIXES = (".bin", ".h5", ".npy", ".npz", ".mat", ".hdr", ".cfl", ".dat")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    prefix=st.sampled_from(sorted(PREFIXES)),
    body=st.binary(min_size=0, max_size=600),
    suffix=st.sampled_from(SUFFIXES),
)
def test_random_bytes_only_raise_project_errors(tmp_path, prefix, body, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(PREFIXES[prefix] + body)
    try:
        volume = open_kspace(path)
    except MriViewerError as exc:
        assert str(path) in str(exc) or exc.path is not None
    else:  # parsing garbage into a valid volume is fine, as long as it is well formed
        assert volume.kspace.ndim == 3
