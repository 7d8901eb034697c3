"""MRI physics: centred FFTs, SENSE operator, batched CG, coil maps, sampling masks."""

from mriviewer.core.physics.cg import conjugate_gradient
from mriviewer.core.physics.coils import estimate_coil_maps
from mriviewer.core.physics.fft import fft2c, fft2c_np, ifft2c, ifft2c_np, rss
from mriviewer.core.physics.masks import (
    MaskSpec,
    SamplingMask,
    load_mask,
    make_mask,
    save_mask,
    stable_seed,
)
from mriviewer.core.physics.sense import SenseOperator

__all__ = [
    "MaskSpec",
    "SamplingMask",
    "SenseOperator",
    "conjugate_gradient",
    "estimate_coil_maps",
    "fft2c",
    "fft2c_np",
    "ifft2c",
    "ifft2c_np",
    "load_mask",
    "make_mask",
    "rss",
    "save_mask",
    "stable_seed",
]
