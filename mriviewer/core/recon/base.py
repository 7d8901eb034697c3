"""The contract every reconstruction method follows (classical ones and unrolled models alike).

A method turns a :class:`ReconProblem` into a stream of :class:`IterationResult` (one per
iteration / unroll); the last one is the final image. The GUI's iteration slider, ``eval`` and
``recon`` consume the same stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class ReconProblem:
    """One slice ready to reconstruct, in normalised units.

    kspace: ``(C, H, W)`` complex64, already masked (zeros where not sampled), divided by ``scale``.
    mask: ``(H, W)`` bool. coil_maps: ``(C, H, W)`` complex64 (None until estimated).
    reference: ``(h, w)`` float32 magnitude in *original* units (None if unknown: then no
    PSNR/SSIM/NMSE, only the ground-truth-free measures of ``compare.iteration_metrics``).
    scale: the factor k-space was divided by; multiply images by it to get original units.
    recon_matrix: ``(h, w)`` crop applied before metrics/display.
    reference_kind: ``rss`` | ``sense`` (``mriviewer.core.reference``) or None without one.
    metrics_region: ``all`` | ``foreground``; foreground: the ``(h, w)`` bool region used then.
    warnings: one-line notes for the user (calibration, sampling), shown by every front end.
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
    metrics_region: str = "all"
    foreground: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.kspace.shape[-2:])  # type: ignore[return-value]

    @property
    def num_coils(self) -> int:
        return int(self.kspace.shape[0])


@dataclass
class IterationResult:
    """One iteration of one method: ``image`` is ``(H, W)`` complex64 in normalised units."""

    method: str
    iteration: int
    image: np.ndarray
    elapsed: float
    final: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ReconMethod(Protocol):
    """Anything with a name, a settings dict and ``iterate(problem, device)``."""

    name: str

    def settings(self) -> dict[str, Any]: ...

    def iterate(self, problem: ReconProblem, device: str = "cpu") -> Iterator[IterationResult]: ...
