"""CG-SENSE with Tikhonov regularisation: solve ``(A^H A + lamda I) x = A^H y`` by conjugate gradient.

A is the SENSE operator ``M F S`` of the problem (coil maps ``S``, mask ``M``), solved in torch with
the project's per-sample :func:`~mriviewer.core.physics.cg.conjugate_gradient` on any torch device.
The CG iterates are recorded by its callback (with the time each was reached) and yielded as an
iteration stream: iteration 0 is the SENSE zero-filled image ``A^H y``, iterations ``1..K`` are
the CG iterates (K <= ``max_iter``; fewer when the relative residual falls below ``tol``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from mriviewer.core.errors import ReconError
from mriviewer.core.physics.cg import conjugate_gradient_iterates
from mriviewer.core.physics.sense import SenseOperator
from mriviewer.core.recon.base import IterationResult, ReconProblem

# lamda = "auto" (the default) takes one of these by the mask's kind.
# 1-D masks: tuned on the demo case (Colin27, 8 coils, 1-D random mask R=4, cf 0.08, seeds 0-2):
# benchmarks/tune_classical.py.
DEFAULT_LAMDA = 0.003
# 2-D masks (poisson, gaussian): CG-SENSE semi-converges there (PSNR peaks near iteration 4,
# then noise grows), and 0.003 lost 3 dB by iteration 15. Mean final PSNR on data/sim/val
# (6 slices; poisson 4x, gaussian 4x, poisson 8x) for lamda 0.003 / 0.01 / 0.015 / 0.02:
# 30.74 / 32.03 / 32.31 / 32.31 dB.
DEFAULT_LAMDA_2D = 0.015
DEFAULT_MAX_ITER = 15
DEFAULT_TOL = 1e-6


def check_settings(method: str, given: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Raise :class:`ReconError` naming any setting ``method`` does not know."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ReconError(
            f"{method}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(allowed)}"
        )


def as_number(method: str, key: str, value: Any, minimum: float, integer: bool = False) -> Any:
    """``value`` as a finite float (or int) >= ``minimum``, else :class:`ReconError`."""
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError) as exc:
        raise ReconError(f"{method}: setting {key}={value!r} is not a number") from exc
    if not np.isfinite(number) or number < minimum:
        raise ReconError(f"{method}: setting {key}={value!r} must be >= {minimum}")
    return number


def is_1d_mask(mask: np.ndarray) -> bool:
    """True when the ``(..., H, W)`` mask samples whole readout lines (every row alike), i.e. a
    1-D Cartesian mask; False for 2-D masks (poisson, gaussian, hand-drawn points)."""
    mask = np.asarray(mask)
    return bool(np.all(mask == mask[..., :1, :]))


def auto_lamda(mask: np.ndarray) -> float:
    """The Tikhonov weight of ``lamda="auto"``: DEFAULT_LAMDA for 1-D masks, DEFAULT_LAMDA_2D
    for 2-D masks (see the tuning notes above)."""
    return DEFAULT_LAMDA if is_1d_mask(mask) else DEFAULT_LAMDA_2D


class CGSense:
    """Tikhonov-regularised SENSE by conjugate gradient.

    Settings: ``lamda`` (Tikhonov weight in normalised units, >= 0, or ``"auto"``, the default:
    0.003 for 1-D masks, 0.015 for 2-D masks, reported as ``extra["lamda"]`` of every iterate;
    ``lambda`` is accepted as an alias), ``max_iter`` (CG iterations, >= 1), ``tol`` (relative
    residual for early stopping).
    """

    name = "cg-sense"

    def __init__(self, **settings: Any) -> None:
        if "lambda" in settings:
            settings["lamda"] = settings.pop("lambda")
        check_settings(self.name, settings, ("lamda", "max_iter", "tol"))
        lamda = settings.get("lamda", "auto")
        #: None: "auto", resolved per problem by :func:`auto_lamda`
        self.lamda: float | None = (
            None if lamda == "auto" else as_number(self.name, "lamda", lamda, 0.0)
        )
        self.max_iter = as_number(
            self.name, "max_iter", settings.get("max_iter", DEFAULT_MAX_ITER), 1, integer=True
        )
        self.tol = as_number(self.name, "tol", settings.get("tol", DEFAULT_TOL), 0.0)

    def settings(self) -> dict[str, Any]:
        lamda = "auto" if self.lamda is None else self.lamda
        return {"lamda": lamda, "max_iter": self.max_iter, "tol": self.tol}

    def lamda_for(self, mask: np.ndarray) -> float:
        """The Tikhonov weight used with ``mask`` (the setting, or :func:`auto_lamda`)."""
        return auto_lamda(mask) if self.lamda is None else float(self.lamda)

    def iterate(self, problem: ReconProblem, device: str = "cpu") -> Iterator[IterationResult]:
        """Yield ``A^H y`` (iteration 0) then each CG iterate; images ``(H, W)`` complex64."""
        if problem.coil_maps is None:
            raise ReconError("cg-sense needs coil maps (none were estimated)")
        start = time.perf_counter()
        try:
            torch_device = torch.device(device)
            kspace = torch.from_numpy(np.ascontiguousarray(problem.kspace)).to(torch_device)
            maps = torch.from_numpy(np.ascontiguousarray(problem.coil_maps)).to(torch_device)
            mask = torch.from_numpy(np.ascontiguousarray(problem.mask)).to(torch_device)
        except (RuntimeError, ValueError) as exc:
            raise ReconError(f"cg-sense cannot use device {device!r} ({exc})") from exc
        op = SenseOperator(maps[None], mask[None])
        lamda = self.lamda_for(problem.mask)
        extra = {"lamda": lamda}
        with torch.no_grad():
            rhs = op.adjoint(kspace[None])
            yield IterationResult(
                self.name,
                0,
                _to_numpy(rhs[0]),
                time.perf_counter() - start,
                final=False,
                extra=dict(extra),
            )
            # streamed as computed: each iterate is yielded once the next one exists (or CG
            # has stopped), so the last one carries final=True
            pending = None
            for i, x in conjugate_gradient_iterates(
                op.normal, rhs, mu=lamda, max_iter=self.max_iter, tol=self.tol
            ):
                if pending is not None:
                    yield pending
                pending = IterationResult(
                    self.name,
                    i + 1,
                    _to_numpy(x[0]),
                    time.perf_counter() - start,
                    extra=dict(extra),
                )
            if pending is None:  # nothing to solve (A^H y = 0): the start image is the answer
                yield IterationResult(
                    self.name,
                    1,
                    _to_numpy(rhs[0]),
                    time.perf_counter() - start,
                    final=True,
                    extra=dict(extra),
                )
            else:
                pending.final = True
                yield pending


def _to_numpy(image: torch.Tensor) -> np.ndarray:
    return image.detach().cpu().numpy().astype(np.complex64)
