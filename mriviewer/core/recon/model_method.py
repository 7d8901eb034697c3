"""A trained unrolled model as a reconstruction method: ``model:NAME`` or ``model:PATH``.

:func:`load_model_method` is what :func:`mriviewer.core.compare.get_method` returns for a
``model:`` name; the weights and card are read by :mod:`mriviewer.core.checkpoints`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mriviewer.core.checkpoints import ModelCard, load_model, resolve_model
from mriviewer.core.device import best_device
from mriviewer.core.errors import ReconError
from mriviewer.core.models import UnrolledNet
from mriviewer.core.recon.base import IterationResult, ReconProblem


class ModelMethod:
    """A trained unrolled model as a reconstruction method (``model:NAME`` or ``model:PATH``).

    iterate yields iteration 0 = ``A^H y`` then one result per unroll (``unrolls`` settable for
    an early exit after fewer unrolls, e.g. the first k GLEAM modules).
    """

    def __init__(
        self,
        model: UnrolledNet,
        card: ModelCard,
        name: str,
        path: Path,
        device: str,
        unrolls: int | None = None,
    ) -> None:
        self.model = model
        self.card = card
        self.name = name
        self.path = path
        self.device = device
        if unrolls is not None and not 0 <= int(unrolls) <= model.num_unrolls:
            raise ReconError(
                f"unrolls must be in [0, {model.num_unrolls}] for {name}, got {unrolls}"
            )
        self.unrolls = model.num_unrolls if unrolls is None else int(unrolls)

    @property
    def weights_sha256(self) -> str:
        """SHA-256 of the weights file (hex): which weights a result came from, since a name
        such as ``model:dense`` means other weights after a retraining."""
        if getattr(self, "_sha256", None) is None:
            import hashlib

            digest = hashlib.sha256()
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def settings(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.weights_sha256[:16],
            "architecture": self.card.architecture,
            "unrolls": self.unrolls,
            "strategy": self.card.strategy,
        }

    def iterate(
        self, problem: ReconProblem, device: str | None = None
    ) -> Iterator[IterationResult]:
        start_time = time.perf_counter()
        device = device or self.device
        if problem.coil_maps is None:
            raise ReconError(f"{self.name} needs coil maps; the problem has none")
        if getattr(self.model, "dynamic", False):
            raise ReconError(
                f"{self.name} is a cine model ({self.model.denoiser} denoiser over time): it "
                "reconstructs cine series (eval on a cine file), not single 2-D slices"
            )
        model = self.model.to(device)
        extra = {"card": self.card.to_dict()}
        # inference mode is entered per step, never across a yield (it is thread-local state
        # that would otherwise leak into the caller between iterations)
        with torch.inference_mode():
            kspace = torch.from_numpy(np.ascontiguousarray(problem.kspace, dtype=np.complex64))
            maps = torch.from_numpy(np.ascontiguousarray(problem.coil_maps, dtype=np.complex64))
            mask = torch.from_numpy(np.asarray(problem.mask, dtype=bool))
            try:
                meas = model.measurement(
                    kspace[None].to(device), maps[None].to(device), mask[None].to(device)
                )
            except ValueError as exc:
                raise ReconError(f"{self.name}: {exc}") from exc
            x = meas.aty

        def result(k: int, image: torch.Tensor) -> IterationResult:
            out = image[0].detach().to("cpu").numpy().astype(np.complex64)
            return IterationResult(
                self.name,
                k,
                out,
                time.perf_counter() - start_time,
                final=k == self.unrolls,
                extra=extra,
            )

        yield result(0, x)
        for k in range(self.unrolls):
            with torch.inference_mode():
                x = model.unroll(k, x, meas)
            yield result(k + 1, x)


def load_model_method(
    name_or_path: str | Path, device: str | None = None, **settings: Any
) -> ModelMethod:
    """A :class:`ModelMethod` named ``model:X`` for a bundled name or saved path ``X``.

    settings: ``unrolls`` (early exit after that many unrolls). Unknown settings are refused.
    """
    unknown = sorted(set(settings) - {"unrolls"})
    if unknown:
        raise ReconError(f"model methods take the setting 'unrolls' only, got {unknown}")
    weights = resolve_model(name_or_path)
    device = device or best_device()
    model, card = load_model(weights, device=device)
    text = str(name_or_path)
    name = text if text.startswith("model:") else f"model:{text}"
    return ModelMethod(model, card, name, weights, device, unrolls=settings.get("unrolls"))


__all__ = ["ModelMethod", "load_model_method"]
