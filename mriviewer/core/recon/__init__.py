"""Classical reconstructions as iteration streams (zero-filled, CG-SENSE, l1-wavelet, GRAPPA).

Every method yields :class:`~mriviewer.core.recon.base.IterationResult` objects: iteration 0 is
the SENSE zero-filled image ``A^H y``, then one per solver iteration; the last has ``final=True``.
"""

from __future__ import annotations

from collections.abc import Callable


def register_classical(register: Callable) -> None:
    """Register the iterative classical methods with :mod:`mriviewer.core.compare`.

    ``cg-sense``: :class:`~mriviewer.core.recon.cg_sense.CGSense` (settings lamda, max_iter, tol);
    ``l1-wavelet``: :class:`~mriviewer.core.recon.l1_wavelet.L1Wavelet` (lamda, max_iter, wavelet);
    ``grappa``: :class:`~mriviewer.core.recon.grappa.Grappa` (kernel_size, lamda, combine).
    """
    from mriviewer.core.recon.cg_sense import CGSense
    from mriviewer.core.recon.grappa import Grappa
    from mriviewer.core.recon.l1_wavelet import L1Wavelet

    register("cg-sense", CGSense)
    register("l1-wavelet", L1Wavelet)
    register("grappa", Grappa)
