"""Reconstruction methods for cine (2-D + time) problems; every one streams its iterations.

A cine iterate is ``(T, H, W)`` complex64 in normalised units (an :class:`IterationResult`
whose ``image`` has a leading frames axis). The SENSE operator ``A = M_t F S`` is the 2-D one
batched over frames (:class:`~mriviewer.core.physics.sense.SenseOperator` with the frames as
its batch axis: one set of coil maps, one mask per frame).

- ``zero-filled``: ``A^H y`` per frame (one iterate).
- ``cg-sense``: Tikhonov CG-SENSE per frame (frames solved together by the batched CG, each
  frame with its own step sizes and stopping); iteration 0 is ``A^H y``.
- ``kt-l1``: k-t compressed sensing, ``min_x 1/2 ||A x - y||^2 + lamda ||F_t x||_1`` with the
  orthonormal temporal DFT ``F_t`` (a periodic, smooth motion is sparse in temporal frequency),
  solved by FISTA (Beck & Teboulle 2009) with step ``1 / max_pixel(sum_c |S_c|^2)`` (a bound on
  the Lipschitz constant of ``A^H A``: ``||M F|| = 1``); the prox of the l1 term is complex
  soft-thresholding of ``F_t x`` (``F_t`` is unitary). Iteration 0 is ``A^H y``, then one
  iterate per FISTA step.
- ``model:PATH``: a trained unrolled model (:class:`CineModelMethod`), frames as its batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mriviewer.core.errors import ReconError
from mriviewer.core.physics.cg import conjugate_gradient_iterates
from mriviewer.core.physics.sense import SenseOperator
from mriviewer.core.recon.base import IterationResult
from mriviewer.core.recon.cg_sense import (
    CGSense,
    as_number,
    check_settings,
)

# Chosen on demo-cine (random k-t masks R 4 and 8, centre fraction 0.08, seeds 0-1): PSNR peaks
# near 30 iterations at lamda 0.01 (README, "Dynamic (cine) data").
KT_L1_LAMDA = 0.01
KT_L1_MAX_ITER = 30


@dataclass
class CineProblem:
    """One cine slice ready to reconstruct, in normalised units (cf. ``ReconProblem``).

    kspace ``(T, C, H, W)`` complex64, masked, divided by ``scale``; mask ``(T, H, W)`` bool;
    coil_maps ``(C, H, W)`` (from the time-averaged data; None when the calibration region is
    too small); reference ``(T, h, w)`` float32 magnitude in original units or None.
    """

    kspace: np.ndarray
    mask: np.ndarray
    coil_maps: np.ndarray | None = None
    reference: np.ndarray | None = None
    scale: float = 1.0
    recon_matrix: tuple[int, int] | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    reference_kind: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: ``(T, h, w)`` bool: the reference's foreground per frame when the metrics cover it only
    foreground: np.ndarray | None = None
    #: ``(V, C)`` coil-compression matrix applied to the k-space (``virtual_coils``), or None
    compression: np.ndarray | None = None

    @property
    def metrics_region(self) -> str:
        return "all" if self.foreground is None else "foreground"

    @property
    def frames(self) -> int:
        return int(self.kspace.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.kspace.shape[-2:])  # type: ignore[return-value]


def _operator(problem: CineProblem, device: str) -> tuple[SenseOperator, torch.Tensor]:
    if problem.coil_maps is None:
        raise ReconError("needs coil maps (none were estimated: calibration region too small)")
    try:
        dev = torch.device(device)
        kspace = torch.from_numpy(np.ascontiguousarray(problem.kspace)).to(dev)
        maps = torch.from_numpy(np.ascontiguousarray(problem.coil_maps)).to(dev)
        mask = torch.from_numpy(np.ascontiguousarray(problem.mask)).to(dev)
    except (RuntimeError, ValueError) as exc:
        raise ReconError(f"cannot use device {device!r} ({exc})") from exc
    frames = kspace.shape[0]
    return SenseOperator(maps[None].expand(frames, *maps.shape), mask), kspace


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.complex64)


class CineZeroFilled:
    """``A^H y`` per frame with the time-averaged coil maps (one iterate)."""

    name = "zero-filled"

    def __init__(self, **settings: Any) -> None:
        check_settings(self.name, settings, ())

    def settings(self) -> dict[str, Any]:
        return {"combine": "sense"}

    def iterate(self, problem: CineProblem, device: str = "cpu") -> Iterator[IterationResult]:
        start = time.perf_counter()
        op, kspace = _operator(problem, device)
        with torch.no_grad():
            image = _np(op.adjoint(kspace))
        yield IterationResult(self.name, 0, image, time.perf_counter() - start, final=True)


class CineCGSense(CGSense):
    """Tikhonov CG-SENSE per frame, frames batched (settings as the 2-D ``cg-sense``)."""

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "per": "frame"}

    def iterate(self, problem: CineProblem, device: str = "cpu") -> Iterator[IterationResult]:
        start = time.perf_counter()
        op, kspace = _operator(problem, device)
        extra = {"lamda": self.lamda_for(problem.mask)}
        with torch.no_grad():
            rhs = op.adjoint(kspace)
            yield IterationResult(
                self.name, 0, _np(rhs), time.perf_counter() - start, extra=dict(extra)
            )
            pending = None
            for i, x in conjugate_gradient_iterates(
                op.normal, rhs, mu=extra["lamda"], max_iter=self.max_iter, tol=self.tol
            ):
                if pending is not None:
                    yield pending
                pending = IterationResult(
                    self.name, i + 1, _np(x), time.perf_counter() - start, extra=dict(extra)
                )
            if pending is None:
                pending = IterationResult(
                    self.name, 1, _np(rhs), time.perf_counter() - start, extra=dict(extra)
                )
            pending.final = True
            yield pending


def soft_threshold(x: torch.Tensor, tau: float) -> torch.Tensor:
    """Complex soft-thresholding ``x max(1 - tau / |x|, 0)`` (the prox of ``tau ||.||_1``)."""
    magnitude = x.abs()
    return x * torch.clamp(1 - tau / torch.clamp(magnitude, min=1e-12), min=0.0)


class KtL1:
    """k-t compressed sensing: l1 of the temporal Fourier transform, FISTA (module docstring).

    Settings: ``lamda`` (l1 weight in normalised units, >= 0; ``lambda`` accepted),
    ``max_iter`` (FISTA iterations, >= 1)."""

    name = "kt-l1"

    def __init__(self, **settings: Any) -> None:
        if "lambda" in settings:
            settings["lamda"] = settings.pop("lambda")
        check_settings(self.name, settings, ("lamda", "max_iter"))
        self.lamda = as_number(self.name, "lamda", settings.get("lamda", KT_L1_LAMDA), 0.0)
        self.max_iter = as_number(
            self.name, "max_iter", settings.get("max_iter", KT_L1_MAX_ITER), 1, integer=True
        )

    def settings(self) -> dict[str, Any]:
        return {
            "lamda": self.lamda,
            "max_iter": self.max_iter,
            "transform": "temporal DFT (orthonormal)",
            "solver": "FISTA",
        }

    def iterate(self, problem: CineProblem, device: str = "cpu") -> Iterator[IterationResult]:
        start = time.perf_counter()
        op, kspace = _operator(problem, device)
        with torch.no_grad():
            power = float((op.coil_maps[0].abs() ** 2).sum(0).max())
            step = 1.0 / max(power, 1e-12)
            tau = self.lamda * step
            rhs = op.adjoint(kspace)
            yield IterationResult(self.name, 0, _np(rhs), time.perf_counter() - start)
            x = rhs
            z = rhs
            t = 1.0
            for i in range(self.max_iter):
                v = z - step * (op.normal(z) - rhs)
                coeffs = torch.fft.fft(v, dim=0, norm="ortho")
                x_new = torch.fft.ifft(soft_threshold(coeffs, tau), dim=0, norm="ortho")
                t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
                z = x_new + ((t - 1) / t_new) * (x_new - x)
                x, t = x_new, t_new
                yield IterationResult(
                    self.name,
                    i + 1,
                    _np(x),
                    time.perf_counter() - start,
                    final=i + 1 == self.max_iter,
                )


class CineModelMethod:
    """A trained unrolled model (``model:PATH``) on a cine problem: the frames are the model's
    batch axis (kspace and maps ``(T, C, H, W)``, the k-t mask ``(T, H, W)``), so a cine model
    (``denoiser`` ``3d``/``2+1d``) convolves over time and a 2-D model denoises frame by frame.
    Iteration 0 is ``A^H y``, then one ``(T, H, W)`` iterate per unroll (``unrolls``: early exit).

    Wraps :class:`mriviewer.core.recon.model_method.ModelMethod` (``load_model_method``)."""

    def __init__(self, method: Any) -> None:
        self.method = method
        self.name = method.name

    def settings(self) -> dict[str, Any]:
        return {**self.method.settings(), "per": "series (frames as the batch)"}

    def iterate(self, problem: CineProblem, device: str = "cpu") -> Iterator[IterationResult]:
        start = time.perf_counter()
        op, kspace = _operator(problem, device)
        model = self.method.model.to(device)
        unrolls = self.method.unrolls
        with torch.inference_mode():
            try:
                meas = model.measurement(kspace, op.coil_maps, op.mask[:, 0] > 0)
            except ValueError as exc:
                raise ReconError(f"{self.name}: {exc}") from exc
            x = meas.aty
            image = _np(x)
        yield IterationResult(self.name, 0, image, time.perf_counter() - start, final=unrolls == 0)
        for k in range(unrolls):
            with torch.inference_mode():  # entered per step, never across a yield
                x = model.unroll(k, x, meas)
                image = _np(x)
            yield IterationResult(
                self.name, k + 1, image, time.perf_counter() - start, final=k + 1 == unrolls
            )


def load_cine_model(name_or_path: str, **settings: Any) -> CineModelMethod:
    """``model:PATH`` (or a bundled name) as a cine method (settings: ``unrolls``)."""
    from mriviewer.core.recon.model_method import load_model_method

    text = name_or_path[len("model:") :] if name_or_path.startswith("model:") else name_or_path
    return CineModelMethod(load_model_method(text, device="cpu", **settings))


CINE_METHODS = {"zero-filled": CineZeroFilled, "cg-sense": CineCGSense, "kt-l1": KtL1}
