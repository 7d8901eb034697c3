"""Classical reconstructions as iteration streams (zero-filled, CG-SENSE, l1-wavelet)."""

from __future__ import annotations

from collections.abc import Callable


def register_classical(register: Callable) -> None:
    """Register the iterative classical methods with :mod:`mriviewer.core.compare`."""
