"""Coil-map calibration for narrow 1-D ACS bands: a rectangle of the band's lines (ESPIRiT as
BART's ecalib does it) instead of a square that is too small or takes in unsampled lines."""

from __future__ import annotations

import numpy as np
import pytest

from mriviewer.core.compare import evaluate_image, get_method, prepare_problem
from mriviewer.core.physics.coils import auto_calibration, espirit_maps, estimate_coil_maps
from mriviewer.core.physics.masks import MaskSpec, make_mask
from tests.conftest import phantom_case


def test_auto_calibration_regions():
    assert auto_calibration((224, 20)) == 20  # wide enough: a square, as before
    assert auto_calibration((20, 20)) == 20
    assert auto_calibration((224, 8)) == (24, 8)  # narrow band of columns: 24 x 8 rectangle
    assert auto_calibration((8, 192)) == (8, 24)  # ... or of rows
    assert auto_calibration((16, 6)) == (16, 6)
    assert auto_calibration((224, 3)) == 12  # too few lines for any kernel


def _match(est: np.ndarray, true: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Per-pixel |<est, true>| / (|est| |true|): 1 where the maps agree up to a phase."""
    num = np.abs((est * true.conj()).sum(0))
    den = np.linalg.norm(est, axis=0) * np.linalg.norm(true, axis=0) + 1e-12
    return (num / den)[support]


def test_rectangular_espirit_recovers_the_coil_maps():
    kspace, image, true_maps = phantom_case(96, 128, coils=8, seed=2)
    support = np.abs(image) > 0.1 * np.abs(image).max()
    rect = espirit_maps(kspace, (24, 8))
    assert rect.shape == kspace.shape and rect.dtype == np.complex64
    assert np.percentile(_match(rect, true_maps, support), 5) > 0.99
    # through the cached entry point, a tuple selects the rectangle
    maps = estimate_coil_maps(kspace, calib=(24, 8))
    # torch ESPIRiT stops its power iteration once the maps move by under 1e-3
    np.testing.assert_allclose(maps, rect, atol=1e-3)
    # unit norm across coils where the object is
    assert np.allclose(np.linalg.norm(rect, axis=0)[support], 1.0, atol=1e-3)


def test_maps_stay_finite_on_noise_only_data():
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal((4, 32, 32)) + 1j * rng.standard_normal((4, 32, 32))) * 1e-3
    maps = estimate_coil_maps(noise.astype(np.complex64), calib=(16, 6))
    assert maps.shape == (4, 32, 32) and np.all(np.isfinite(maps))


def _cg_psnr(problem) -> float:
    *_, last = get_method("cg-sense").iterate(problem)
    return evaluate_image(problem, last.image)["psnr"]


def test_narrow_acs_at_8x_beats_zero_filled_on_a_simulated_brain(shared_data):
    from mriviewer.core.simulate import SimulationSettings, Simulator, load_source

    source = load_source(shared_data / "anatomy" / "colin27_t1.nii.gz")
    settings = SimulationSettings(matrix=(224, 192), coils=8, snr=40.0, seed=1, coil_radius=1.2)
    sim = Simulator(source, settings)
    kspace = sim.simulate_slice(91, sim.noise_sigma([91]))
    mask = make_mask(MaskSpec("random", 8.0, 0.04, seed=0), kspace.shape[-2:])
    assert mask.acs_size()[1] == 8
    problem = prepare_problem(kspace, mask)
    assert problem.info["calib"] == (24, 8)
    *_, zf = get_method("zero-filled").iterate(problem)
    zero_filled = evaluate_image(problem, zf.image)["psnr"]
    new = _cg_psnr(problem)
    assert new > zero_filled + 1.0
    # a square of 12 takes in unsampled lines: worse maps on this slice
    old = _cg_psnr(prepare_problem(kspace, mask, calib=12))
    assert new > old


@pytest.mark.parametrize("accel", [4.0, 8.0])
def test_phantom_cg_sense_beats_zero_filled_with_auto_calibration(accel):
    kspace, _, _ = phantom_case(96, 128, coils=8, seed=0)
    mask = make_mask(MaskSpec("random", accel, 0.0625, seed=0), kspace.shape[-2:])
    problem = prepare_problem(kspace, mask)
    assert isinstance(problem.info["calib"], tuple)
    *_, zf = get_method("zero-filled").iterate(problem)
    assert _cg_psnr(problem) > evaluate_image(problem, zf.image)["psnr"] + 2.0
