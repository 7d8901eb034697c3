"""l1-wavelet compressed sensing with sigpy: ``min_x 1/2 ||M F S x - y||^2 + lamda ||W x||_1``.

Built on :class:`sigpy.mri.app.L1WaveletRecon` (a ``sigpy.linop.Sense`` data term, a Daubechies
``sigpy.linop.Wavelet`` with ``sigpy.prox.L1Reg`` as a unitary-transform prox, solved by FISTA =
``sigpy.alg.GradientMethod`` with Nesterov acceleration). The app's algorithm is stepped one
``alg.update()`` at a time so every iteration is yielded. FISTA starts from ``A^H y``
(iteration 0) with step ``1 / max_r sum_c |S_c(r)|^2``, an upper bound of ``||A^H A||`` (F is
unitary and M a projection), so no power iteration is needed.

sigpy runs on the CPU (numpy) unless ``device`` is CUDA and cupy is installed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from mriviewer.core.errors import ReconError
from mriviewer.core.recon.base import IterationResult, ReconProblem
from mriviewer.core.recon.cg_sense import as_number, check_settings

# Tuned on the demo case (Colin27, 8 coils, 1-D random mask R=4, cf 0.08, seeds 0-2):
# benchmarks/tune_classical.py.
DEFAULT_LAMDA = 0.002
DEFAULT_MAX_ITER = 40
DEFAULT_WAVELET = "db4"


def sigpy_device(device: str) -> Any:
    """The sigpy device for a torch-style device string (CPU unless cupy can use the GPU)."""
    import sigpy

    if str(device).startswith("cuda") and sigpy.config.cupy_enabled:
        index = int(str(device).split(":")[1]) if ":" in str(device) else 0
        return sigpy.Device(index)
    return sigpy.cpu_device


class L1Wavelet:
    """l1-wavelet regularised SENSE solved by FISTA (sigpy).

    Settings: ``lamda`` (l1 weight in normalised units, >= 0; ``lambda`` is accepted as an
    alias), ``max_iter`` (FISTA iterations, >= 1), ``wavelet`` (a PyWavelets name, e.g. ``db4``).
    """

    name = "l1-wavelet"

    def __init__(self, **settings: Any) -> None:
        if "lambda" in settings:
            settings["lamda"] = settings.pop("lambda")
        check_settings(self.name, settings, ("lamda", "max_iter", "wavelet"))
        self.lamda = as_number(self.name, "lamda", settings.get("lamda", DEFAULT_LAMDA), 0.0)
        self.max_iter = as_number(
            self.name, "max_iter", settings.get("max_iter", DEFAULT_MAX_ITER), 1, integer=True
        )
        self.wavelet = str(settings.get("wavelet", DEFAULT_WAVELET))
        import pywt

        if self.wavelet not in pywt.wavelist(kind="discrete"):
            raise ReconError(
                f"{self.name}: unknown wavelet {self.wavelet!r} (use a discrete PyWavelets name "
                "such as db4, haar, sym4)"
            )

    def settings(self) -> dict[str, Any]:
        return {"lamda": self.lamda, "max_iter": self.max_iter, "wavelet": self.wavelet}

    def iterate(self, problem: ReconProblem, device: str = "cpu") -> Iterator[IterationResult]:
        """Yield ``A^H y`` (iteration 0) then each FISTA iterate; images ``(H, W)`` complex64."""
        import sigpy
        import sigpy.mri

        if problem.coil_maps is None:
            raise ReconError("l1-wavelet needs coil maps (none were estimated)")
        start = time.perf_counter()
        sp_device = sigpy_device(device)
        xp = sp_device.xp
        maps = np.ascontiguousarray(problem.coil_maps, dtype=np.complex64)
        weights = problem.mask.astype(np.float32)
        kspace = np.ascontiguousarray(problem.kspace * weights[None], dtype=np.complex64)
        bound = float((np.abs(maps) ** 2).sum(axis=0).max())
        step = 1.0 / bound if bound > 0 else 1.0
        with sp_device:
            sense = sigpy.mri.linop.Sense(sigpy.to_device(maps, sp_device), weights=None)
            mask_dev = sigpy.to_device(weights, sp_device)
            x0 = sense.H(sigpy.to_device(kspace, sp_device) * mask_dev)
        yield IterationResult(self.name, 0, _to_numpy(x0), time.perf_counter() - start)
        app = sigpy.mri.app.L1WaveletRecon(
            sigpy.to_device(kspace, sp_device),
            sigpy.to_device(maps, sp_device),
            self.lamda,
            weights=mask_dev,
            wave_name=self.wavelet,
            device=sp_device,
            x=xp.array(x0, copy=True),
            alpha=step,
            max_iter=self.max_iter,
            show_pbar=False,
        )
        iteration = 0
        while not app.alg.done():
            app.alg.update()
            iteration += 1
            yield IterationResult(
                self.name,
                iteration,
                _to_numpy(app.alg.x),
                time.perf_counter() - start,
                final=app.alg.done(),
            )


def _to_numpy(image: Any) -> np.ndarray:
    import sigpy

    return np.array(sigpy.to_device(image, sigpy.cpu_device), dtype=np.complex64, copy=True)
