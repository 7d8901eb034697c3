"""Unrolled reconstruction networks (MoDL, unrolled PGD), their denoisers and the registry."""

from mriviewer.core.models.denoisers import (
    ResBlockDenoiser,
    ResidualCNN,
    channels_to_complex,
    complex_to_channels,
)
from mriviewer.core.models.implicit_cg import cg_solve_implicit
from mriviewer.core.models.unrolled import (
    MODELS,
    Measurement,
    MoDL,
    UnrolledNet,
    UnrolledPGD,
    build_model,
    register_model,
)

__all__ = [
    "MODELS",
    "Measurement",
    "MoDL",
    "ResBlockDenoiser",
    "ResidualCNN",
    "UnrolledNet",
    "UnrolledPGD",
    "build_model",
    "cg_solve_implicit",
    "channels_to_complex",
    "complex_to_channels",
    "register_model",
]
