"""The torch ESPIRiT gives sigpy's maps up to a per-pixel phase (issue 14)."""

import numpy as np
import pytest
import sigpy.mri

from mriviewer.core.physics.coils import espirit_maps
from mriviewer.core.physics.espirit import espirit_torch
from mriviewer.core.physics.fft import fft2c_np
from mriviewer.core.simulate import coil_maps


def _kspace(coils, shape, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    image = ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1) * (1 + 0.3 * np.cos(6 * xx) * np.sin(4 * yy))
    image = image * np.exp(1j * (xx + 0.5 * yy))
    k = fft2c_np(coil_maps(coils, shape) * image[None])
    k = k + 1e-3 * np.abs(k).max() * (
        rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)
    )
    return k.astype(np.complex64)


def _agreement(a, b):
    """Per-pixel |<a, b>| / (|a| |b|) where both are nonzero, and where the supports differ."""
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    both = (na > 0) & (nb > 0)
    inner = np.abs((a.conj() * b).sum(0))[both] / (na[both] * nb[both])
    return inner, float(((na > 0) != (nb > 0)).mean())


@pytest.mark.parametrize("shape,coils,calib", [((64, 48), 4, 20), ((63, 50), 6, 16)])
def test_square_calibration_matches_sigpy(shape, coils, calib):
    k = _kspace(coils, shape)
    ref = sigpy.mri.app.EspiritCalib(k, calib_width=calib, show_pbar=False).run()
    got = espirit_torch(k, calib)
    inner, support_mismatch = _agreement(got, ref)
    assert inner.size > 0.3 * np.prod(shape)
    assert inner.min() > 1 - 1e-3
    assert support_mismatch < 0.01
    assert got.dtype == np.complex64 and got.shape == k.shape


def test_rectangular_calibration_matches_espirit_maps():
    k = _kspace(4, (64, 48), seed=1)
    ref = espirit_maps(k, (24, 8))
    got = espirit_torch(k, (24, 8))
    inner, support_mismatch = _agreement(got, ref)
    assert inner.min() > 1 - 1e-3
    assert support_mismatch < 0.01


def test_few_iterations_still_give_eigenvalues():
    k = _kspace(4, (32, 32))
    for max_iter in (1, 2, 3, 5):
        assert np.abs(espirit_torch(k, 16, max_iter=max_iter)).max() > 0


def test_power_iteration_finishes_slow_pixels_in_closed_form():
    """Pixels whose two leading eigenvalues are nearly equal barely move under the power
    iteration; after ``direct_after`` iterations they get their remaining iterations in closed
    form (eigh), which equals running them all, and the other pixels stop there."""
    import torch

    from mriviewer.core.physics.espirit import power_iteration

    gen = torch.Generator().manual_seed(0)
    c, h, w = 4, 6, 5
    q, _ = torch.linalg.qr(torch.randn(h * w, c, c, dtype=torch.complex128, generator=gen))
    spectra = torch.tensor([1.0, 0.3, 0.1, 0.05]).repeat(h * w, 1)
    slow = torch.zeros(h * w, dtype=torch.bool)
    slow[::15] = True  # 2 of 30 pixels: second eigenvalue 0.99
    spectra[slow, 1] = 0.99
    mats = q @ torch.diag_embed(spectra.to(torch.complex128)) @ q.conj().transpose(1, 2)
    aha = mats.permute(1, 2, 0).reshape(c, c, h, w).to(torch.complex64)
    truth = q[:, :, 0]  # (pixels, C)

    def alignment(vectors):
        v = vectors.reshape(c, -1).T.to(torch.complex128)
        return (v.conj() * truth).sum(1).abs() / v.norm(dim=1)

    full, full_eig, done = power_iteration(aha, 0.5, 100, 0.0, direct_after=None)
    assert done == 100
    assert float(alignment(full)[slow].max()) < 0.99  # 100 iterations: still a mixture
    assert float(alignment(full)[~slow].min()) > 1 - 1e-5
    vectors, values, done = power_iteration(aha, 0.5, 100, 1e-4, direct_after=24)
    assert done == 24
    torch.testing.assert_close(vectors, full, atol=2e-5, rtol=0)
    torch.testing.assert_close(values, full_eig, atol=2e-5, rtol=0)
    # too many slow pixels (over direct_fraction): the power iteration goes on to max_iter
    _, _, done = power_iteration(aha, 0.5, 40, 1e-4, direct_after=24, direct_fraction=0.05)
    assert done == 40
