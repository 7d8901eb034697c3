"""Training data settings of issue 16: readout crop, per-acceleration centre fractions, batches of
mixed accelerations, coil compression, and what the model card records about the data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mriviewer.core.errors import ConfigError
from mriviewer.core.io import write_fastmri
from mriviewer.core.physics.coil_compression import (
    apply_compression,
    compress_coils,
    compression_matrix,
    retained_energy,
)
from mriviewer.core.physics.fft import fft2c_np, ifft2c_np
from mriviewer.core.physics.masks import MaskSpec, make_mask
from mriviewer.core.physics.sense import SenseOperator
from mriviewer.core.training import SliceDataset, collate, load_config, train
from mriviewer.core.training.data import portable_folder, readout_crop
from tests.conftest import REPO, phantom_case

H, W, COILS = 48, 32, 6


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crop")
    for split, seeds in (("train", [0, 1]), ("val", [5])):
        for s in seeds:
            ks = np.stack([phantom_case(H, W, coils=COILS, seed=10 * s + j)[0] for j in range(2)])
            write_fastmri(root / split / f"case{s}.h5", ks)
    return root


def test_readout_crop_is_the_fft_of_the_cropped_image():
    rng = np.random.default_rng(0)
    image = (rng.standard_normal((3, 40, 24)) + 1j * rng.standard_normal((3, 40, 24))).astype(
        np.complex64
    )
    kspace = fft2c_np(image).astype(np.complex64)
    for start, size in ((0, 16), (7, 16), (24, 16), (3, 33)):
        got = readout_crop(kspace, start, size)
        want = fft2c_np(image[:, start : start + size]).astype(np.complex64)
        assert got.dtype == np.complex64 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=2e-6 * np.abs(want).max(), rtol=0)
    with pytest.raises(ConfigError):
        readout_crop(kspace, 30, 16)


def test_sense_forward_model_holds_on_the_crop():
    """Noiseless 1-D undersampled data: A_crop x_crop = crop(y) (maps and mask cropped alike)."""
    kspace, image, maps = phantom_case(H, W, coils=COILS, seed=3)
    mask = make_mask(MaskSpec("random", 4.0, 0.16, seed=1), (H, W)).array
    under = kspace * mask[None]
    start, size = 11, 24
    rows = slice(start, start + size)
    y_crop = readout_crop(under, start, size)
    op = SenseOperator(torch.from_numpy(maps[None, :, rows]), torch.from_numpy(mask[None, rows]))
    ax = op.forward(torch.from_numpy(image[None, rows])).numpy()[0]
    np.testing.assert_allclose(ax, y_crop, atol=2e-6 * np.abs(y_crop).max(), rtol=0)
    # the unsampled columns stay exactly zero after the crop (the readout transform is per column)
    assert not np.any(y_crop[:, :, ~mask[0]])


def test_dataset_crops_training_samples_only(data):
    spec = MaskSpec("random", 4.0, 0.16)
    full = SliceDataset(data / "train", spec, [4.0], coil_method="lowres")
    cropped = SliceDataset(data / "train", spec, [4.0], coil_method="lowres", crop_readout=16)
    a, b = full.sample(1, seed=9), cropped.sample(1, seed=9)
    assert a.rows is None and b.rows is not None and b.rows[1] - b.rows[0] == 16
    rows = slice(*b.rows)
    assert b.kspace.shape == (COILS, 16, W) and b.target.shape == (16, W)
    assert b.scale == a.scale  # the full slice's normalisation
    np.testing.assert_array_equal(b.mask, a.mask[rows])
    np.testing.assert_allclose(b.maps, a.maps[:, rows])
    np.testing.assert_allclose(b.target, a.target[rows], atol=1e-6)
    np.testing.assert_allclose(b.reference, a.reference[rows])
    np.testing.assert_allclose(
        b.kspace, readout_crop(a.kspace, *b.rows[:1], 16), atol=2e-6 * np.abs(a.kspace).max()
    )
    # the crop window covers the object (rows holding signal)
    assert np.abs(b.target).max() > 0.3 * np.abs(a.target).max()
    # validation samples stay full
    v = cropped.validation_sample(0, 4.0)
    assert v.rows is None and v.kspace.shape == (COILS, H, W)
    with pytest.raises(ConfigError, match="1-D mask"):
        SliceDataset(data / "train", MaskSpec("poisson", 4.0), [4.0], crop_readout=16)
    with pytest.raises(ConfigError, match="readout size"):
        SliceDataset(data / "train", spec, [4.0], coil_method="lowres", crop_readout=H + 2)


def test_centre_fraction_per_acceleration_and_mixed_batches(data):
    spec = MaskSpec("random", 4.0, 0.08)
    ds = SliceDataset(
        data / "train", spec, [4.0, 8.0], coil_method="lowres", center_fractions=[0.25, 0.125]
    )
    for acc, cf in ((4.0, 0.25), (8.0, 0.125)):
        mask = ds.sample(0, seed=3, acceleration=acc).mask
        expected = make_mask(replace(spec, acceleration=acc, center_fraction=cf, seed=3), (H, W))
        np.testing.assert_array_equal(mask, expected.array)
    drawn = {ds.sample(i % 4, seed=s).acceleration for i, s in enumerate(range(20))}
    assert drawn == {4.0, 8.0}
    batch = collate([ds.sample(i, seed=100 + i) for i in range(4)])
    assert batch.kspace.shape == (4, COILS, H, W)
    assert ds.describe()["center_fractions"] == {"4": 0.25, "8": 0.125}
    with pytest.raises(ConfigError, match="one value per acceleration"):
        SliceDataset(data / "train", spec, [4.0, 8.0], center_fractions=[0.08])


def test_coil_compression_commutes_with_fourier_and_mask():
    kspace, image, maps = phantom_case(H, W, coils=8, seed=1)
    a = compression_matrix(kspace, 4)
    assert a.shape == (4, 8)
    np.testing.assert_allclose(a @ a.conj().T, np.eye(4), atol=1e-5)
    compressed = compress_coils(kspace, 4)
    np.testing.assert_allclose(compressed, apply_compression(kspace, a), atol=1e-5)
    # A acts on coils only: compressed k-space = F((A S) x)
    np.testing.assert_allclose(
        compressed,
        fft2c_np(apply_compression(maps, a) * image[None]),
        atol=1e-4 * np.abs(compressed).max(),
    )
    # all coils: a unitary change of basis (energy kept exactly)
    full = compress_coils(kspace, 8)
    np.testing.assert_allclose(np.linalg.norm(full), np.linalg.norm(kspace), rtol=1e-5)
    assert 0.9 < retained_energy(kspace, 4) <= 1.0
    assert retained_energy(kspace, 8) == pytest.approx(1.0)
    # the calibration block alone gives nearly the same energy ordering
    calib = compression_matrix(kspace, 4, calib=(16, 8))
    kept = np.linalg.norm(apply_compression(kspace, calib)) / np.linalg.norm(kspace)
    assert kept**2 > 0.9
    with pytest.raises(ConfigError):
        compression_matrix(kspace, 9)
    # coil images of the virtual coils combine back to the image with the compressed maps
    vmaps = apply_compression(maps, compression_matrix(kspace, 8))
    combined = (vmaps.conj() * ifft2c_np(full)).sum(0)
    inside = np.abs(image) > 0.5
    np.testing.assert_allclose(
        combined[inside] / (np.abs(vmaps) ** 2).sum(0)[inside], image[inside], atol=1e-4
    )


def test_config_settings_are_checked(data):
    base = {"train_dir": str(data / "train"), "steps": 1}
    cfg = load_config(
        None,
        base
        | {
            "accelerations": [4.0, 8.0],
            "center_fractions": [0.08, 0.04],
            "crop_readout": 16,
            "virtual_coils": 4,
        },
    )
    assert cfg.data_options(train=True)["crop_readout"] == 16
    assert cfg.data_options(train=False)["crop_readout"] is None
    assert load_config(None, base | {"crop_readout": 0}).crop_readout is None
    with pytest.raises(ConfigError, match="one value per acceleration"):
        load_config(None, base | {"center_fractions": [0.08, 0.04]})
    with pytest.raises(ConfigError, match="1-D mask"):
        load_config(None, base | {"crop_readout": 16, "mask.kind": "poisson"})
    with pytest.raises(ConfigError, match="crop_readout"):
        load_config(None, base | {"crop_readout": 4})
    with pytest.raises(ConfigError, match="virtual_coils"):
        load_config(None, base | {"virtual_coils": -1})


def test_training_runs_with_crop_batches_mixed_accelerations_and_virtual_coils(data, tmp_path):
    config = load_config(
        None,
        {
            "train_dir": str(data / "train"),
            "val_dir": str(data / "val"),
            "steps": 3,
            "batch_size": 2,
            "accelerations": [4.0, 8.0],
            "center_fractions": [0.16, 0.08],
            "crop_readout": 16,
            "virtual_coils": 4,
            "coil_method": "lowres",
            "model.num_unrolls": 2,
            "model.features": 4,
            "model.cg_iters": 2,
            "output": str(tmp_path / "run"),
            "progress": False,
            "val_every": 3,
            "device": "cpu",
        },
    )
    result = train(config)
    assert result.steps == 3 and np.isfinite(result.last_loss)
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    tdata = card["training_data"]["train"]
    assert tdata["crop_readout"] == 16 and tdata["virtual_coils"] == 4
    assert tdata["center_fractions"] == {"4": 0.16, "8": 0.08}
    assert "crop_readout" not in card["training_data"]["val"]
    assert card["training_data"]["val"]["virtual_coils"] == 4
    assert not Path(tdata["folder"]).is_absolute()
    # at most V: a file with fewer coils than virtual_coils is left as it is
    ds = SliceDataset(data / "val", MaskSpec(), [4.0], coil_method="lowres", virtual_coils=64)
    assert ds.sample(0, seed=1).kspace.shape[0] == COILS
    assert "validation" in card and np.isfinite(card["validation"]["psnr"])


def test_portable_folder_is_never_absolute(tmp_path, monkeypatch):
    repo = REPO
    assert portable_folder(repo / "data" / "sim" / "train") == "data/sim/train"
    monkeypatch.chdir(tmp_path)
    assert portable_folder(tmp_path / "x" / "train") == "x/train"
    assert portable_folder("/somewhere/else/train") == "else/train"


def test_description_lists_the_simulation_sources(tmp_path):
    from mriviewer.core.simulate import Augmentation, SimulationSettings, Split, simulate

    vol = np.zeros((24, 28, 6), np.float32)
    vol[6:18, 6:22, :] = 100.0
    np.save(tmp_path / "vol.npy", vol)
    settings = SimulationSettings(matrix=(32, 32), coils=4, seed=5, augment=Augmentation(flip=True))
    simulate(tmp_path / "vol.npy", tmp_path / "ds", settings, splits=[Split("train", 1, 4)])
    ds = SliceDataset(tmp_path / "ds" / "train", MaskSpec("random", 4.0, 0.16), [4.0])
    (source,) = ds.describe()["sources"]
    assert source["source"] == "vol.npy" and source["split_range"] == [1, 4]
    assert source["seed"] == 5 and source["slices"] == 3 and source["settings"]["augment"]["flip"]
