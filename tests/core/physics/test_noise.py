"""Noise prewhitening from a scan's own noise data (core/physics/noise.py, MRD and TWIX readers)."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

from mriviewer.cli import main
from mriviewer.core.errors import KSpaceReadError, ReconError
from mriviewer.core.io import open_kspace
from mriviewer.core.physics.noise import (
    estimate_noise_covariance,
    noise_summary,
    prewhiten,
    prewhitening_matrix,
)
from tests.conftest import phantom_case  # noqa: E402
from tests.core.io.test_io_readers import (  # noqa: E402
    FLAG_NOISE,
    acquisition,
    flag_bits,
    random_kspace,
    write_ismrmrd,
)

C = 8
LEVELS = np.array([1, 1, 4, 1, 9, 1, 2, 16.0])  # unequal coil noise variances


def correlated_factor(seed: int = 0) -> np.ndarray:
    """Cholesky factor of a correlated coil noise covariance (condition number about 12)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((C, C)) + 1j * rng.standard_normal((C, C))
    return np.linalg.cholesky(0.5 * (a @ a.conj().T) / C + np.diag(LEVELS))


def correlated_noise(factor: np.ndarray, count: int, sigma: float, seed: int) -> np.ndarray:
    """``(C, count)`` complex noise with covariance ``sigma^2 factor factor^H``."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((C, count)) + 1j * rng.standard_normal((C, count))
    return sigma * factor @ (z / np.sqrt(2))


def test_covariance_and_whitening_matrix():
    factor = correlated_factor()
    psi_true = factor @ factor.conj().T
    noise = correlated_noise(factor, 200_000, 1.0, seed=1)
    psi = estimate_noise_covariance(noise)
    assert psi.shape == (C, C) and np.allclose(psi, psi.conj().T)
    np.testing.assert_allclose(psi, psi_true, atol=0.03 * np.abs(psi_true).max())
    w = prewhitening_matrix(psi)
    level = np.mean(np.real(np.diag(psi)))
    # W Psi W^H = mean(diag Psi) I exactly: correlation removed, average noise level kept.
    np.testing.assert_allclose(w @ psi @ w.conj().T, level * np.eye(C), atol=1e-4 * level)
    whitened = prewhiten(noise, psi)
    np.testing.assert_allclose(
        estimate_noise_covariance(whitened), level * np.eye(C), atol=1e-3 * level
    )
    # Per k-space point on (C, H, W); zeros (unsampled points) stay zero.
    k = correlated_noise(factor, 16 * 12, 1.0, seed=2).reshape(C, 16, 12)
    k[:, :, ::3] = 0
    out = prewhiten(k, psi)
    assert out.shape == k.shape and out.dtype == np.complex64
    np.testing.assert_allclose(out[:, 3, 4], w @ k[:, 3, 4], rtol=1e-5)
    assert not out[:, :, ::3].any()


def test_noise_errors_are_one_line():
    with pytest.raises(ReconError, match=r"^3 noise samples per coil are too few for 4 coils"):
        estimate_noise_covariance(np.ones((4, 3), np.complex64))
    with pytest.raises(ReconError, match=r"must be complex, got dtype float64"):
        estimate_noise_covariance(np.ones((2, 10)))
    dead = np.diag([1.0, 0.0]).astype(complex)
    with pytest.raises(ReconError, match=r"not positive definite \(a coil without noise\?\)"):
        prewhitening_matrix(dead)
    with pytest.raises(
        ReconError, match=r"^noise covariance is 2 x 2 but the k-space has 3 coils$"
    ):
        prewhiten(np.ones((3, 8, 8), np.complex64), np.eye(2))


def test_summary_reports_condition_and_levels():
    psi = np.diag([4.0, 1.0]).astype(complex)
    psi[0, 1] = psi[1, 0] = 1.0
    out = noise_summary(psi, samples=100)
    assert out == {
        "coils": 2,
        "condition_number": float(f"{np.linalg.cond(psi):.4g}"),
        "noise_std_per_coil": [2.0, 1.0],
        "max_correlation": 0.5,
        "samples_per_coil": 100,
    }


def test_cg_sense_closer_to_truth_with_prewhitening():
    """y = S x + n with correlated, unequal coil noise: whitened CG-SENSE (data W y, maps W S)
    is the maximum-likelihood estimate and lands clearly closer to the noise-free x."""
    from mriviewer.core.compare import get_method
    from mriviewer.core.physics.masks import MaskSpec, make_mask
    from mriviewer.core.recon.base import ReconProblem

    kspace, image, maps = phantom_case(64, 64, coils=C, seed=0)
    factor = correlated_factor()
    y = kspace + correlated_noise(factor, 64 * 64, 0.02, seed=3).reshape(C, 64, 64)
    psi = estimate_noise_covariance(correlated_noise(factor, 4096, 0.02, seed=4))
    spec = MaskSpec(kind="random", acceleration=3, center_fraction=0.08, seed=1)
    mask = make_mask(spec, (64, 64)).array

    def cg_sense(data: np.ndarray, coil_maps: np.ndarray) -> np.ndarray:
        problem = ReconProblem(
            kspace=(data * mask).astype(np.complex64),
            mask=mask,
            coil_maps=coil_maps.astype(np.complex64),
        )
        *_, last = get_method("cg-sense").iterate(problem)
        return last.image

    def nmse(estimate: np.ndarray) -> float:
        return float(np.sum(np.abs(estimate - image) ** 2) / np.sum(np.abs(image) ** 2))

    w = prewhitening_matrix(psi)
    plain = nmse(cg_sense(y, maps))
    whitened = nmse(cg_sense(prewhiten(y, psi), (w @ maps.reshape(C, -1)).reshape(maps.shape)))
    assert whitened < 0.7 * plain, (whitened, plain)  # measured: 0.049 vs 0.087


@pytest.fixture
def mrd_with_noise(tmp_path):
    """A 1-slice, 8-coil, 32 x 32 MRD file: 4 noise acquisitions of 256 correlated samples
    (flag 19) before the imaging lines, whose k-space carries the same noise."""
    factor = correlated_factor()
    kspace = phantom_case(32, 32, coils=C, seed=0)[0]
    kspace = kspace + correlated_noise(factor, 32 * 32, 0.02, 5).reshape(C, 32, 32)
    noise = correlated_noise(factor, 4 * 256, 0.02, 6).astype(np.complex64)
    rows = [
        acquisition(noise[:, i * 256 : (i + 1) * 256], flags=flag_bits(FLAG_NOISE))
        for i in range(4)
    ]
    path = write_ismrmrd(tmp_path / "noisy.h5", kspace[None], extra_rows=rows, shuffle=False)
    return path, kspace.astype(np.complex64), noise


def test_mrd_noise_acquisitions_prewhiten_the_kspace(mrd_with_noise):
    path, kspace, noise = mrd_with_noise
    psi = estimate_noise_covariance(noise)
    volume = open_kspace(path)
    assert volume.whitened and volume.header["noise_acquisitions"] == 4
    assert volume.header["noise_samples"] == 1024
    assert "noise" not in volume.header["skipped_acquisitions"]
    np.testing.assert_allclose(volume.noise_covariance, psi, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(volume.kspace, prewhiten(kspace, psi), rtol=1e-4, atol=1e-6)
    raw = open_kspace(path, prewhiten=False)
    assert not raw.whitened and raw.noise_covariance is not None
    np.testing.assert_array_equal(raw.kspace, kspace)
    # Toggling on an opened volume re-reads; the slice identity for caches says which.
    raw.prewhiten = True
    np.testing.assert_allclose(raw.kspace, volume.kspace)
    assert volume.source_key(0) == f"{path}#slice0#prewhitened"


def test_info_reports_noise(mrd_with_noise, capsys):
    path, _, noise = mrd_with_noise
    psi = estimate_noise_covariance(noise)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["noise"]
    assert info["prewhitened"] is True and info["samples_per_coil"] == 1024
    assert info["condition_number"] == pytest.approx(np.linalg.cond(psi), rel=1e-3)
    np.testing.assert_allclose(
        info["noise_std_per_coil"], np.sqrt(np.real(np.diag(psi))), rtol=1e-3
    )
    assert main(["info", str(path)]) == 0
    line = re.search(r"^noise: +(.*)$", capsys.readouterr().out, re.M).group(1)
    assert line.startswith(
        "prewhitened; covariance from 1024 samples per coil: condition number "
        f"{info['condition_number']:.3g}, max coil correlation"
    )
    assert main(["info", str(path), "--no-prewhiten"]) == 0
    assert re.search(
        r"^noise: +not prewhitened \(--no-prewhiten\); covariance", capsys.readouterr().out, re.M
    )


def test_files_without_noise_are_left_as_they_are(tmp_path, capsys):
    kspace = phantom_case(32, 32, coils=4, seed=0)[0]
    np.save(tmp_path / "k.npy", kspace)
    volume = open_kspace(tmp_path / "k.npy")
    assert not volume.whitened and volume.noise_covariance is None
    np.testing.assert_array_equal(volume.kspace, kspace)
    assert main(["info", str(tmp_path / "k.npy")]) == 0
    assert re.search(r"^noise: +no noise data: not prewhitened$", capsys.readouterr().out, re.M)


def test_convert_writes_whitened_kspace_unless_told(mrd_with_noise, tmp_path, capsys):
    import h5py

    path, kspace, noise = mrd_with_noise
    out = tmp_path / "c.h5"
    assert main(["convert", str(path), str(out)]) == 0
    with h5py.File(out, "r") as h5:
        np.testing.assert_allclose(
            h5["kspace"][0], prewhiten(kspace, estimate_noise_covariance(noise)), atol=1e-5
        )
        assert bool(h5.attrs["prewhitened"]) is True
    assert main(["convert", str(path), str(out), "--no-prewhiten"]) == 0
    with h5py.File(out, "r") as h5:
        np.testing.assert_array_equal(h5["kspace"][0], kspace)
        assert bool(h5.attrs["prewhitened"]) is False


class FakeTwixArray:
    """What the reader uses of a twixtools twix_array: dims, flags, indexing."""

    def __init__(self, data: np.ndarray, dims: list[str]) -> None:
        self.data, self.dims, self.flags = data, dims, {}

    def __getitem__(self, index):
        return self.data[index]


def test_twix_noise_scan_gives_the_covariance():
    from mriviewer.core.io.twix import _twix_noise

    noise = correlated_noise(correlated_factor(), 64 * 32, 1.0, 7)
    # twixtools order (..., Lin, Cha, Col): here (Lin=64, Cha=8, Col=32).
    data = noise.reshape(C, 64, 32).transpose(1, 0, 2)
    scans = [{"noise": FakeTwixArray(data, ["Lin", "Cha", "Col"])}, {"image": None}]
    psi, samples, problem = _twix_noise(scans, C)
    assert problem is None and samples == 64 * 32
    np.testing.assert_allclose(psi, estimate_noise_covariance(noise), rtol=1e-6, atol=1e-12)
    assert _twix_noise([{"image": None}], C) == (None, 0, None)
    _, _, problem = _twix_noise(scans, 4)
    assert problem == "TWIX noise data has 8 coils, the imaging data 4"


def test_real_twix_reports_its_noise_state(shared_data, capsys):
    pytest.importorskip("twixtools")
    import twixtools

    path = shared_data / "siemens_twix_phantom" / "gre.dat"
    scans = twixtools.map_twix(str(path), verbose=False)
    has_noise = any(isinstance(m, dict) and m.get("noise") is not None for m in scans)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["noise"]
    if has_noise:
        assert info["prewhitened"] is True and info["coils"] == 2
        assert info["condition_number"] >= 1.0
    else:  # this phantom file holds no noise-adjust scan (checked with twixtools)
        assert info == {"prewhitened": False, "reason": "no noise data"}


@pytest.mark.parametrize(
    ("noise", "reason"),
    [
        (np.full((4, 64), np.nan, np.complex64), "noise samples contain NaN or Inf"),
        (np.ones((2, 64), np.complex64), "noise acquisitions have 2 coils, the imaging data 4"),
        (np.ones((4, 2), np.complex64), "2 noise samples per coil are too few for 4 coils "
         "(the covariance would be singular)"),
    ],
)  # fmt: skip
def test_unusable_noise_is_reported_and_not_used(tmp_path, capsys, noise, reason):
    kspace = phantom_case(16, 16, coils=4, seed=0)[0].astype(np.complex64)
    rows = [acquisition(noise, flags=flag_bits(FLAG_NOISE))]
    path = write_ismrmrd(tmp_path / "bad_noise.h5", kspace[None], extra_rows=rows)
    volume = open_kspace(path)
    assert not volume.whitened and volume.header["noise_ignored"] == reason
    np.testing.assert_array_equal(volume.kspace, kspace)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^noise data ignored: +{re.escape(reason)}$", out, re.M)
    assert re.search(r"^noise: +noise data unusable: not prewhitened$", out, re.M)


def test_recon_and_eval_take_no_prewhiten(mrd_with_noise, tmp_path, capsys):
    path, _, _ = mrd_with_noise
    images = {}
    for flag in ([], ["--no-prewhiten"]):
        out = tmp_path / f"r{len(flag)}.npy"
        args = ["recon", str(path), "--method", "zero-filled", "--seed", "0", "--out", str(out)]
        assert main([*args, *flag]) == 0
        images[len(flag)] = np.load(out)
    assert images[0].shape == images[1].shape == (32, 32)
    assert not np.allclose(images[0], images[1])  # whitened and raw coils combine differently
    res = tmp_path / "e.json"
    assert (
        main(["eval", str(path), "--methods", "zero-filled", "--no-prewhiten", "--json", str(res)])
        == 0
    )
    assert json.loads(res.read_text())["failures"] == []


def fake_twixtools(monkeypatch, scans: list[dict]) -> None:
    """A stand-in ``twixtools`` whose map_twix returns ``scans``."""
    import types

    module = types.ModuleType("twixtools")
    module.map_twix = lambda *args, **kwargs: scans
    monkeypatch.setitem(sys.modules, "twixtools", module)


def twix_image(kspace: np.ndarray) -> FakeTwixArray:
    """(C, Col, Lin) k-space as a twixtools image array in its (Lin, Cha, Col) order."""
    image = FakeTwixArray(kspace.transpose(2, 0, 1), ["Lin", "Cha", "Col"])
    image.shape = image.data.shape
    return image


def test_twix_reader_prewhitens_with_the_noise_scan(monkeypatch, tmp_path):
    from mriviewer.core.io.twix import open_twix

    factor = correlated_factor()
    kspace = phantom_case(32, 32, coils=C, seed=0)[0].astype(np.complex64)
    noise = correlated_noise(factor, 16 * 64, 1.0, 8)
    noise_scan = FakeTwixArray(noise.reshape(C, 16, 64).transpose(1, 0, 2), ["Lin", "Cha", "Col"])
    fake_twixtools(monkeypatch, [{"noise": noise_scan}, {"image": twix_image(kspace)}])
    volume = open_twix(tmp_path / "meas.dat")
    assert volume.whitened and volume.header["noise_samples"] == 16 * 64
    psi = estimate_noise_covariance(noise)
    np.testing.assert_allclose(volume.kspace, prewhiten(kspace, psi), rtol=1e-4, atol=1e-5)


def test_twix_reader_refuses_an_implausible_layout(monkeypatch, tmp_path):
    from mriviewer.core.io.twix import open_twix

    fake_twixtools(monkeypatch, [{"image": twix_image(random_kspace((2, 32, 1)))}])
    with pytest.raises(KSpaceReadError) as info:
        open_twix(tmp_path / "meas.dat")
    assert str(info.value) == (
        f"{tmp_path / 'meas.dat'}: implausible layout TWIX (Cha, Col, Lin) = (2, 32, 1): image "
        "axis W has 1 sample (at least 8 needed); the measurement does not hold 2-D Cartesian "
        "k-space (try another scan=)"
    )
