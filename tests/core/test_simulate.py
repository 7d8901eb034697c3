"""``mriviewer simulate``: multi-coil k-space from magnitude volumes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.core.errors import ConfigError, KSpaceReadError
from mriviewer.core.io import open_kspace
from mriviewer.core.physics.fft import ifft2c_np, rss
from mriviewer.core.simulate import (
    SimulationSettings,
    Simulator,
    Split,
    check_splits,
    fit_to_matrix,
    load_source,
    parse_split,
    simulate,
)


@pytest.fixture(scope="module")
def volume_npy(tmp_path_factory):
    """A small (X, Y, Z) = (30, 36, 12) magnitude volume: an ellipsoid with a brighter core."""
    x, y, z = np.meshgrid(
        np.linspace(-1, 1, 30), np.linspace(-1, 1, 36), np.linspace(-1, 1, 12), indexing="ij"
    )
    vol = 100.0 * ((x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 1.2) ** 2 < 1)
    vol += 50.0 * ((x / 0.3) ** 2 + ((y - 0.2) / 0.3) ** 2 < 1)
    path = tmp_path_factory.mktemp("src") / "vol.npy"
    np.save(path, vol.astype(np.float32))
    return path


def _read(path):
    with h5py.File(path, "r") as h5:
        return h5["kspace"][()], h5["reconstruction_rss"][()], json.loads(h5.attrs["simulation"])


def test_splits_write_files_with_recorded_settings(volume_npy, tmp_path):
    settings = SimulationSettings(matrix=(40, 32), coils=4, snr=30.0, seed=7)
    splits = [Split("train", 0, 6), Split("val", 6, 8), Split("test", 8, 11)]
    paths = simulate(volume_npy, tmp_path / "out", settings, splits=splits)
    assert [p.relative_to(tmp_path / "out").as_posix() for p in paths] == [
        "train/vol_train.h5",
        "val/vol_val.h5",
        "test/vol_test.h5",
    ]
    seen: set[int] = set()
    for path, split in zip(paths, splits, strict=True):
        kspace, ref, record = _read(path)
        assert kspace.shape == (split.stop - split.start, 4, 40, 32)
        assert kspace.dtype == np.complex64
        assert record["split"] == split.name
        assert record["slice_indices"] == list(split.slices)
        assert record["settings"]["seed"] == 7
        assert record["settings"]["snr"] == 30.0
        assert record["settings"]["coils"] == 4
        assert record["source"]["file"] == "vol.npy"
        assert len(record["source"]["sha256"]) == 64
        assert not seen & set(record["slice_indices"])
        seen |= set(record["slice_indices"])
        # Reference = RSS of the fully sampled noisy k-space (fastMRI convention).
        np.testing.assert_allclose(ref, rss(ifft2c_np(kspace)), rtol=1e-4, atol=1e-3)
        volume = open_kspace(path)
        assert volume.num_coils == 4 and volume.matrix == (40, 32)
        assert volume.header["simulation"]["split"] == split.name


def test_reproducible_and_independent_of_split_layout(volume_npy, tmp_path):
    settings = SimulationSettings(matrix=(40, 32), coils=4, snr=30.0, seed=3)
    a = simulate(volume_npy, tmp_path / "a.h5", settings, slices=(4, 7))[0]
    b = simulate(volume_npy, tmp_path / "b.h5", settings, slices=(4, 7))[0]
    np.testing.assert_array_equal(_read(a)[0], _read(b)[0])
    # The same source slice gets the same phase and noise whichever split file holds it (the
    # noise level is set once from all simulated slices, here the same 4..6).
    c = simulate(volume_npy, tmp_path / "c", settings, splits=[Split("x", 4, 5), Split("y", 5, 7)])
    np.testing.assert_array_equal(_read(c[1])[0][0], _read(a)[0][1])
    other = SimulationSettings(matrix=(40, 32), coils=4, snr=30.0, seed=4)
    d = simulate(volume_npy, tmp_path / "d.h5", other, slices=(4, 7))[0]
    assert not np.allclose(_read(d)[0], _read(a)[0])


def test_noise_matches_stated_snr(volume_npy):
    sim = Simulator(load_source(volume_npy), SimulationSettings(matrix=(64, 64), coils=4, snr=20.0))
    sigma = sim.noise_sigma([6])
    noisy = sim.simulate_slice(6, sigma)
    clean = sim.simulate_slice(6, 0.0)
    noise = noisy - clean
    assert np.std(noise) == pytest.approx(sigma, rel=0.05)
    assert np.std(noise.real) == pytest.approx(sigma / np.sqrt(2), rel=0.05)
    image = rss(ifft2c_np(clean))
    fg = image > 0.1 * image.max()
    assert image[fg].mean() / sigma == pytest.approx(20.0, rel=1e-3)


def test_overlapping_and_bad_splits_are_refused():
    with pytest.raises(ConfigError, match="overlap"):
        check_splits([Split("train", 0, 5), Split("test", 4, 8)], 10)
    with pytest.raises(ConfigError, match="START < STOP"):
        check_splits([Split("train", 5, 5)], 10)
    with pytest.raises(ConfigError, match="<= 10"):
        check_splits([Split("train", 0, 11)], 10)
    with pytest.raises(ConfigError, match="unique"):
        check_splits([Split("a", 0, 2), Split("a", 3, 4)], 10)
    with pytest.raises(ConfigError, match="NAME:START:STOP"):
        parse_split("train:1")
    with pytest.raises(ConfigError, match="integers"):
        parse_split("train:a:b")
    assert parse_split("val:120:130") == Split("val", 120, 130)


def test_cli_simulate(volume_npy, tmp_path, capsys):
    out = tmp_path / "ds"
    code = main(
        [
            "simulate", str(volume_npy), str(out), "--matrix", "40x32", "--coils", "2",
            "--split", "train:0:4", "--split", "val:4:6", "--seed", "1", "--slices-per-file", "3",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "split train" in printed and "split val" in printed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.h5")) == [
        "train/vol_train_part0.h5",
        "train/vol_train_part1.h5",
        "val/vol_val.h5",
    ]
    assert _read(out / "train" / "vol_train_part1.h5")[2]["slice_indices"] == [3]


def test_cli_simulate_refuses_overlap(volume_npy, tmp_path, capsys):
    code = main(
        ["simulate", str(volume_npy), str(tmp_path / "ds"),
         "--split", "train:0:6", "--split", "test:5:8"]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "overlap" in err and "Traceback" not in err
    assert not (tmp_path / "ds").exists()


def test_cli_simulate_bad_source(tmp_path, capsys):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    assert main(["simulate", str(bad), str(tmp_path / "o.h5")]) == 1
    assert "not a readable NIfTI" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "missing.npy"), str(tmp_path / "o.h5")]) == 1
    assert "not found" in capsys.readouterr().err


def test_nifti_is_reoriented_to_ras(tmp_path):
    import nibabel

    data = np.zeros((10, 12, 8), dtype=np.float32)
    data[1, 2, 3] = 1.0
    flipped = nibabel.Nifti1Image(data[::-1], np.diag([-1.0, 1.0, 1.0, 1.0]))  # LAS storage
    path = tmp_path / "las.nii.gz"
    nibabel.save(flipped, str(path))
    source = load_source(path)
    assert source.info["reoriented_to"] == "RAS+"
    np.testing.assert_array_equal(source.data, data)
    # Axial slice 3: rows run anterior -> posterior, columns left -> right.
    axial = source.slice_image("axial", 3)
    assert axial.shape == (12, 10)
    assert axial[12 - 1 - 2, 1] == 1.0


def test_sources_and_matrix_fitting(tmp_path):
    with pytest.raises(KSpaceReadError, match="3-D volume or a 2-D slice"):
        np.save(tmp_path / "v.npy", np.zeros(5))
        load_source(tmp_path / "v.npy")
    with pytest.raises(KSpaceReadError, match="all zeros"):
        np.save(tmp_path / "z.npy", np.zeros((4, 4, 4)))
        load_source(tmp_path / "z.npy")
    np.save(tmp_path / "s.npy", np.ones((20, 30)))
    single = load_source(tmp_path / "s.npy")
    assert single.num_slices("axial") == 1
    assert fit_to_matrix(np.ones((21, 31)), None).shape == (22, 32)
    shrunk = fit_to_matrix(np.ones((40, 20)), (20, 20))
    assert shrunk.shape == (20, 20) and shrunk[:, :5].sum() == 0
    with pytest.raises(ConfigError, match="orientation"):
        SimulationSettings(orientation="oblique")
    with pytest.raises(ConfigError, match="SNR"):
        SimulationSettings(snr=0)


def test_colin27_axial_slice(shared_data, tmp_path):
    source = shared_data / "anatomy" / "colin27_t1.nii.gz"
    settings = SimulationSettings(matrix=(224, 192), coils=4, seed=0)
    path = simulate(source, tmp_path / "colin.h5", settings, slices=(90, 91))[0]
    volume = open_kspace(path)
    assert volume.matrix == (224, 192) and volume.num_slices == 1
    assert volume.header["simulation"]["source"]["file"] == "colin27_t1.nii.gz"
    ref = volume.read_reference(0)
    # The head fills the middle of the matrix; the zero-padded border is only noise.
    assert ref[100:124, 80:112].mean() > 10 * ref[:3].mean()


def test_augmented_training_data_records_its_draws(volume_npy, tmp_path):
    """Flips, rotation, scaling, gamma, SNR, phase, coil count / radius per file; repeats."""
    from mriviewer.core.simulate import Augmentation

    aug = Augmentation(
        flip=True,
        rotate=10.0,
        scale=(0.9, 1.1),
        gamma=(0.7, 1.4),
        snr=(20.0, 60.0),
        phase_strength=(0.5, 3.0),
        coils=(4, 6),
        coil_radii=(1.0, 1.5),
        repeats=2,
    )
    settings = SimulationSettings(matrix=(40, 32), coils=8, seed=3, augment=aug)
    paths = simulate(
        volume_npy, tmp_path / "aug", settings, splits=[Split("train", 2, 8)], slices_per_file=4
    )
    assert len(paths) == 3  # 6 slices x 2 copies, 4 per file
    seen = []
    for path in paths:
        kspace, ref, record = _read(path)
        assert kspace.shape[1] == record["coils"] in (4, 6)
        assert record["coil_radius"] in (1.0, 1.5)
        assert record["settings"]["augment"]["repeats"] == 2
        draws = record["augmentation"]
        assert len(draws) == kspace.shape[0] == len(record["noise_sigma"])
        for d, sigma in zip(draws, record["noise_sigma"], strict=True):
            assert 20.0 <= d["snr"] <= 60.0 and 0.5 <= d["phase_strength"] <= 3.0
            assert abs(d["rotate"]) <= 10.0 and 0.9 <= d["scale"] <= 1.1
            assert 0.7 <= d["gamma"] <= 1.4
            assert sigma == pytest.approx(record["signal"] / d["snr"])
            seen.append((d["slice"], d["repeat"]))
        np.testing.assert_allclose(ref, rss(ifft2c_np(kspace)), rtol=1e-4, atol=1e-4)
    assert sorted(seen) == [(k, r) for k in range(2, 8) for r in range(2)]
    # the two copies of a slice differ; the same settings reproduce the files exactly
    k0 = _read(paths[0])[0]
    assert not np.allclose(k0[0], k0[1])
    again = simulate(
        volume_npy, tmp_path / "aug2", settings, splits=[Split("train", 2, 8)], slices_per_file=4
    )
    np.testing.assert_array_equal(_read(again[0])[0], k0)
    with pytest.raises(ConfigError):
        Augmentation(snr=(60.0, 20.0))
    with pytest.raises(ConfigError):
        Augmentation(coils=(0,))


def test_augment_image_geometry():
    from mriviewer.core.simulate import augment_image

    image = np.zeros((20, 16), np.float32)
    image[4:8, 3:6] = 1.0
    flipped = augment_image(image, {"flip_ud": True, "flip_lr": True}, 1.0)
    np.testing.assert_array_equal(flipped, image[::-1, ::-1])
    assert augment_image(image, {"rotate": 0.0, "scale": 1.0}, 1.0) is not image
    np.testing.assert_allclose(augment_image(image, {"rotate": 0.0, "scale": 1.0}, 1.0), image)
    half = augment_image(image * 0.25, {"gamma": 0.5}, 1.0)
    np.testing.assert_allclose(half.max(), 0.5, rtol=1e-6)
    rotated = augment_image(image, {"rotate": 90.0}, 1.0)
    assert rotated.shape == image.shape and rotated.sum() > 0
    centred = np.zeros((20, 16), np.float32)
    centred[8:12, 6:10] = 1.0
    zoomed = augment_image(centred, {"scale": 2.0}, 1.0)
    assert zoomed.sum() == pytest.approx(4 * centred.sum(), rel=0.35)


def test_cli_simulate_augmentation(volume_npy, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "simulate", str(volume_npy), str(out), "--matrix", "40x32", "--split", "train:0:3",
            "--flip", "--rotate", "5", "--snr-range", "20,60", "--coil-counts", "4,6",
            "--coil-radii", "1.0,1.5", "--repeats", "2",
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "noise sigma" in text and "coils" in text
    _, _, record = _read(out / "train" / "vol_train.h5")
    assert len(record["augmentation"]) == 6
