"""Simulate a multi-coil cine series (2-D + time) with smooth periodic motion of real anatomy.

Per source slice ``k`` (the magnitude image ``m`` of :mod:`mriviewer.core.simulate`, placed in the
output matrix) and frame ``t = 0 .. T-1`` with cycle phase ``theta = 2 pi t / T``:

- "beating": a radial scaling of a disc-shaped region about the image centre,
  ``r -> r (1 + beat * cos(theta) * w(r))`` with a Gaussian window ``w(r) = exp(-r^2 / (2
  (radius W)^2))``, so the centre contracts and expands while the edge of the object barely moves;
- "respiration": a rigid translation along the rows of ``breath * sin(theta)`` pixels;

the warped magnitude (cubic spline interpolation of the displacement's inverse) is given the
slice's smooth background phase (fixed over time), multiplied by the birdcage coil maps, Fourier
transformed and complex Gaussian noise is added (``default_rng([seed, k, t])`` per frame; the
noise level from the SNR of the static slices, exactly as the 2-D simulation defines it). Both
motions are periodic over the series (frame T would equal frame 0) and smooth (a few harmonics
in the temporal Fourier domain: what k-t methods exploit).

Why a deformed anatomical slice and not a dynamic phantom package: PyPI has two recent dynamic
phantoms (``mrphantom``, a synthetic "slime" with respiratory and cardiac motion, and
``geometric-medical-phantoms``, Shepp-Logan / tube / torso shapes with motion signals), both
bindings to native libraries with one or two releases in 2026; neither is a small, established
pure-Python dependency, and both are geometric rather than anatomical. A smooth deformation of
the Colin27 slice the 2-D demo already uses keeps one source, one licence and one simulation
chain (coil maps, phase, noise) for 2-D and cine, in forty lines, with every setting recorded.
The motion is not physiological (no cardiac anatomy): it is a test signal for k-t methods.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer import __version__
from mriviewer.core.errors import ConfigError
from mriviewer.core.physics.fft import fft2c_np


@dataclass(frozen=True)
class Motion:
    """Settings of the periodic motion (module docstring). ``beat``: peak relative radial
    scaling; ``radius``: window width as a fraction of the matrix width; ``breath``: peak
    translation in pixels along the rows."""

    frames: int = 12
    beat: float = 0.12
    radius: float = 0.18
    breath: float = 1.0

    def __post_init__(self) -> None:
        if int(self.frames) < 2:
            raise ConfigError(f"a cine series needs at least 2 frames, got {self.frames}")
        if not 0 <= self.beat < 0.5 or self.radius <= 0 or abs(self.breath) > 20:
            raise ConfigError("motion: beat must be in [0, 0.5), radius > 0, |breath| <= 20 px")


def warp_frame(image: np.ndarray, motion: Motion, t: int) -> np.ndarray:
    """Frame ``t`` of the motion applied to an ``(H, W)`` magnitude image (float32, >= 0)."""
    from scipy.ndimage import map_coordinates

    h, w = image.shape
    theta = 2 * np.pi * t / motion.frames
    yy, xx = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    r2 = yy**2 + xx**2
    window = np.exp(-r2 / (2 * (motion.radius * w) ** 2))
    factor = 1 + motion.beat * np.cos(theta) * window  # output r maps from input r / factor
    src_y = yy / factor - motion.breath * np.sin(theta) + (h - 1) / 2
    src_x = xx / factor + (w - 1) / 2
    out = map_coordinates(image, [src_y, src_x], order=3, mode="constant", cval=0.0)
    return np.clip(out, 0, None).astype(np.float32)


def simulate_cine(
    source_path: str | Path,
    out: str | Path,
    settings: Any,
    motion: Motion,
    splits: list[Any] | None = None,
    slices: tuple[int, int] | None = None,
) -> list[Path]:
    """Simulate and write cine files (layout: :mod:`mriviewer.core.io.cine`); returns paths.

    settings: a :class:`~mriviewer.core.simulate.SimulationSettings` (no augmentation).
    With ``splits`` (non-overlapping slice ranges, checked as in the 2-D simulation) ``out`` is
    a folder and split ``NAME`` goes to ``out/NAME/<stem>_cine_NAME.h5``; without, ``out`` is
    the file for ``slices`` (default: all). Each source slice is one cine slice of the file.
    """
    from mriviewer.core.io.cine import write_cine
    from mriviewer.core.simulate import Simulator, Split, check_splits, load_source, smooth_phase

    if settings.augment is not None:
        raise ConfigError("--dynamic does not take the data-diversity options yet")
    source = load_source(source_path)
    sim = Simulator(source, settings)
    user_splits = bool(splits)
    if splits:
        if slices is not None:
            raise ConfigError("give either a slice range or splits, not both")
    else:
        start, stop = slices if slices is not None else (0, sim.num_slices)
        splits = [Split("all", start, stop)]
    check_splits(splits, sim.num_slices)
    every = sorted(k for s in splits for k in s.slices)
    sigma = sim.noise_sigma(every)
    stem = source.path.name.split(".")[0]
    out = Path(out)
    written = []
    for split in splits:
        series = []
        for k in split.slices:
            phase_rng = np.random.default_rng([int(settings.seed), int(k)])
            phase = smooth_phase(
                sim.matrix, settings.phase_strength, settings.phase_smoothness, phase_rng
            )
            frames = []
            for t in range(motion.frames):
                image = warp_frame(sim.image(k), motion, t) * np.exp(1j * phase)
                kspace = fft2c_np(sim.maps * image[None])
                rng = np.random.default_rng([int(settings.seed), int(k), int(t)])
                noise = rng.standard_normal((2, *kspace.shape)) * (sigma / np.sqrt(2))
                frames.append((kspace + noise[0] + 1j * noise[1]).astype(np.complex64))
            series.append(np.stack(frames))
        record = {
            "generator": f"mriviewer {__version__} simulate --dynamic",
            "source": source.info,
            "settings": settings.to_dict(),
            "motion": asdict(motion),
            "motion_definition": (
                "frame t, theta = 2 pi t / frames: radial scaling r -> r (1 + beat cos(theta) "
                "exp(-r^2 / (2 (radius W)^2))) about the centre, then a row translation of "
                "breath sin(theta) pixels; cubic interpolation"
            ),
            "matrix": list(sim.matrix),
            "split": split.name,
            "split_range": [split.start, split.stop],
            "slice_indices": list(split.slices),
            "noise_sigma": sigma,
            "noise_definition": (
                "complex Gaussian, std per k-space sample, rng default_rng([seed, slice, frame]); "
                "SNR = mean noiseless RSS over pixels > 10% of max (static slices) / sigma"
            ),
            "coil_maps": f"sigpy.mri.birdcage_maps r={settings.coil_radius}, max RSS 1",
            "phase": "smooth random background phase per slice, fixed over the frames",
            "reference": "RSS per frame of the fully sampled noisy k-space",
        }
        path = (
            out / split.name / f"{stem}_cine_{split.name}.h5"
            if user_splits
            else (out if out.suffix else out / f"{stem}_cine.h5")
        )
        write_cine(
            path,
            np.stack(series),
            recon_matrix=sim.matrix,
            attrs={
                "simulation": json.dumps(record),
                "acquisition": f"simulated-cine-{settings.orientation}",
            },
        )
        written.append(path)
    return written
