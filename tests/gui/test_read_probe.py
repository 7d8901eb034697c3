"""HDF5 files are read in a helper process first: a file that crashes the reader there is
reported, and the app keeps running with the case it had."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mriviewer.gui.read_probe import ReadProbe, is_hdf5
from tests.gui.conftest import run_and_wait
from tests.gui.crash_reader import crash_on_named_files, crash_on_slice_one

pytestmark = pytest.mark.gui


def test_is_hdf5_finds_the_superblock(tmp_path, case_file):
    assert is_hdf5(case_file)
    v73 = tmp_path / "v73.mat"  # MATLAB v7.3: a 512-byte user block, then HDF5
    v73.write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert is_hdf5(v73)
    npy = tmp_path / "k.npy"
    np.save(npy, np.zeros((2, 4, 4), np.complex64))
    assert not is_hdf5(npy)
    assert not is_hdf5(tmp_path / "missing.h5")


def test_probe_reads_good_files_and_reports_crashes(tmp_path, case_file):
    probe = ReadProbe(reader=crash_on_named_files)
    try:
        assert probe.check(case_file, 0).status == "ok"
        bad = tmp_path / "broken.h5"
        bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00garbage" * 50)
        result = probe.check(bad)
        assert result.status == "error" and result.reason  # the reader raised: no crash
        crash = tmp_path / "crash.h5"
        shutil.copy(case_file, crash)
        result = probe.check(crash)
        assert result.status == "crashed"
        assert "crash.h5" in result.reason and "SIGSEGV" in result.reason
        assert probe.check(case_file, 1).status == "ok"  # a new helper took over
    finally:
        probe.close()


def test_file_that_crashes_the_reader_keeps_the_case(window, qtbot, tmp_path, case_file):
    run_and_wait(qtbot, window, ["zero-filled"])
    ref_before = window.grid.panes["reference"].data.copy()
    window.read_probe = ReadProbe(reader=crash_on_named_files)
    crash = tmp_path / "crash.h5"
    shutil.copy(case_file, crash)
    assert not window.open_file(crash)
    assert "crash.h5" in window.errors[-1] and "crashed the HDF5 library" in window.errors[-1]
    assert "crash.h5" in window.error_label.text()
    assert window.volume.path == case_file
    np.testing.assert_array_equal(window.grid.panes["reference"].data, ref_before)
    assert window.traces["zero-filled"].complete
    # the app goes on: the same file under another name opens
    fine = tmp_path / "fine.h5"
    shutil.copy(case_file, fine)
    assert window.open_file(fine, 0)
    assert window.volume.path.name == "fine.h5"


def test_slice_that_crashes_the_reader_keeps_the_slice(window, qtbot):
    window.read_probe = ReadProbe(reader=crash_on_slice_one)
    assert window.volume.slice_index == 0
    kspace_before = window.kspace.copy()
    window.data_panel.slice_spin.setValue(1)  # the user asks for slice 1
    assert "crashed the HDF5 library" in window.errors[-1]
    assert window.volume.slice_index == 0
    assert window.data_panel.slice_spin.value() == 0  # the browser shows the slice on screen
    np.testing.assert_array_equal(window.kspace, kspace_before)
    assert window.load_slice(0)  # nothing changed, nothing to read
