"""Unrolled reconstruction networks sharing one interface, :class:`UnrolledNet`.

Stable API (used by training strategies, P-GLEAM, pruning, checkpoints and the GUI):

- ``model.num_unrolls``: N.
- ``model.iterate(kspace, maps, mask, x0=None, start=0, stop=None)``: yields the ``(B, H, W)``
  image after each unroll ``k`` in ``[start, stop)``; ``x0`` defaults to ``A^H y``.
- ``model(kspace, maps, mask, x0=None, start=0, stop=None)``: the last of those images.
- ``model.unroll(k, x, meas)``: one unroll on a prepared :class:`Measurement` (for checkpointing).
- ``model.unroll_parameters(k)``: the parameters unroll ``k`` uses (its denoiser and step/mu).
- ``model.config()``: JSON-ready architecture settings; ``build_model(config)`` rebuilds it.

Shapes: kspace ``(B, C, H, W)`` complex (already masked), maps ``(B, C, H, W)`` complex, mask
``(B, H, W)`` bool/real. Cine (``denoiser = "3d"`` or ``"2+1d"``, :attr:`UnrolledNet.dynamic`):
ONE series per call with its frames as the batch axis, kspace/maps ``(T, C, H, W)``, mask
``(T, H, W)`` (one k-t mask per frame); the data consistency is the 2-D SENSE operator and the
batched CG with frames as the batch (per-frame CG step sizes), the denoiser convolves over
``(t, y, x)``, and ``iterate`` yields ``(T, H, W)`` images. Any matrix size and coil count; CPU or CUDA; complex64 with float32
weights (or complex128 with float64 weights after ``model.double()``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mriviewer.core.errors import ConfigError
from mriviewer.core.models.denoisers import DIMS, ResBlockDenoiser, ResidualCNN
from mriviewer.core.models.implicit_cg import cg_solve_implicit
from mriviewer.core.physics.cg import conjugate_gradient
from mriviewer.core.physics.sense import SenseOperator

CG_BACKWARDS = ("autograd", "implicit")


@dataclass
class Measurement:
    """What every unroll needs and no unroll changes: operator, k-space ``y`` and ``A^H y``."""

    op: SenseOperator
    kspace: torch.Tensor
    aty: torch.Tensor


def _inverse_softplus(value: float) -> float:
    if value <= 0:
        raise ConfigError(f"value must be > 0 to be kept positive by softplus, got {value}")
    return value + math.log(-math.expm1(-value))


class UnrolledNet(nn.Module):
    """Base class of unrolled networks: N unrolls, each ``x_{k+1} = unroll(k, x_k)``."""

    name: str = ""

    def __init__(self, num_unrolls: int, shared: bool, denoiser: str = "2d") -> None:
        super().__init__()
        if int(num_unrolls) < 1:
            raise ConfigError(f"number of unrolls must be >= 1, got {num_unrolls}")
        if denoiser not in DIMS:
            raise ConfigError(f"denoiser must be one of {', '.join(DIMS)}, got {denoiser!r}")
        self._num_unrolls = int(num_unrolls)
        self.shared = bool(shared)
        #: ``2d`` (images), ``3d`` or ``2+1d`` (one cine series, frames on the batch axis)
        self.denoiser = denoiser

    @property
    def dynamic(self) -> bool:
        """True for spatio-temporal denoisers: a call reconstructs one ``(T, H, W)`` series."""
        return self.denoiser != "2d"

    def _denoiser_config(self) -> dict[str, Any]:
        """``{"denoiser": ...}`` for cine models; empty for 2-D (cards stay as before)."""
        return {"denoiser": self.denoiser} if self.dynamic else {}

    @property
    def num_unrolls(self) -> int:
        """N, the number of unrolls a full forward pass runs."""
        return self._num_unrolls

    # -- subclasses implement these -------------------------------------------------------
    def unroll(self, k: int, x: torch.Tensor, meas: Measurement) -> torch.Tensor:
        """``(B, H, W)`` image after unroll ``k`` given the image ``x`` before it."""
        raise NotImplementedError

    def unroll_parameters(self, k: int) -> list[nn.Parameter]:
        """The trainable parameters unroll ``k`` uses (shared ones appear for every k)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-ready architecture settings; ``build_model(model.config())`` rebuilds the model."""
        raise NotImplementedError

    # -- shared machinery ------------------------------------------------------------------
    def _check_unroll(self, k: int) -> int:
        if not 0 <= int(k) < self.num_unrolls:
            raise IndexError(f"unroll {k} out of range [0, {self.num_unrolls})")
        return int(k)

    @property
    def _copies(self) -> int:
        """How many copies of per-unroll modules/scalars exist: 1 when shared, else N."""
        return 1 if self.shared else self.num_unrolls

    def _index(self, k: int) -> int:
        """Which copy unroll ``k`` uses (0 when shared)."""
        return 0 if self.shared else self._check_unroll(k)

    def _positive_scalars(self, init: float, learn: bool) -> nn.ParameterList | None:
        """One learnable softplus-positive scalar per copy starting at ``init``; None if fixed.

        ``init`` must be > 0 either way (ConfigError otherwise).
        """
        raw = _inverse_softplus(init)
        if not learn:
            return None
        return nn.ParameterList([nn.Parameter(torch.tensor(raw)) for _ in range(self._copies)])

    def _positive_scalar(self, raw: nn.ParameterList | None, init: float, k: int) -> torch.Tensor:
        """Scalar of unroll ``k`` from :meth:`_positive_scalars` (``init`` when fixed)."""
        if raw is None:
            ref = next(self.parameters())
            return torch.tensor(init, device=ref.device, dtype=ref.dtype)
        return F.softplus(raw[self._index(k)])

    def _denoiser_and_scalar_parameters(
        self, k: int, raw: nn.ParameterList | None
    ) -> list[nn.Parameter]:
        """Parameters of unroll ``k``'s copy of ``self.denoisers`` plus its learned scalar."""
        index = self._index(k)
        params = list(self.denoisers[index].parameters())
        if raw is not None:
            params.append(raw[index])
        return params

    def _scalars_per_unroll(
        self, name: str, scalar_of: Callable[[int], torch.Tensor]
    ) -> dict[str, list[float]]:
        """``{name: [scalar_of(k) for every unroll]}`` as floats, for logs."""
        with torch.no_grad():
            return {name: [float(scalar_of(k)) for k in range(self.num_unrolls)]}

    def measurement(
        self, kspace: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor
    ) -> Measurement:
        """Check shapes and build the operator and ``A^H y`` (once per batch)."""
        if kspace.dim() != 4 or not kspace.is_complex():
            raise ValueError(f"kspace must be complex (B, C, H, W), got {tuple(kspace.shape)}")
        if maps.shape != kspace.shape:
            raise ValueError(
                f"coil maps {tuple(maps.shape)} must match k-space {tuple(kspace.shape)}"
            )
        if mask.dim() == 2:
            mask = mask.unsqueeze(0).expand(kspace.shape[0], -1, -1)
        if mask.dim() != 3 or mask.shape[-2:] != kspace.shape[-2:]:
            raise ValueError(
                f"mask must be (B, H, W) matching k-space {tuple(kspace.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        op = SenseOperator(maps, mask)
        return Measurement(op=op, kspace=kspace, aty=op.adjoint(kspace))

    def iterate(
        self,
        kspace: torch.Tensor,
        maps: torch.Tensor,
        mask: torch.Tensor,
        x0: torch.Tensor | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield the ``(B, H, W)`` image after each unroll ``k`` in ``[start, stop)``.

        x0: the image entering unroll ``start`` (default ``A^H y``). stop defaults to N.
        """
        stop = self.num_unrolls if stop is None else int(stop)
        if not 0 <= start <= stop <= self.num_unrolls:
            raise IndexError(
                f"unroll range [{start}, {stop}) is not inside [0, {self.num_unrolls}]"
            )
        meas = self.measurement(kspace, maps, mask)
        x = meas.aty if x0 is None else x0
        for k in range(start, stop):
            x = self.unroll(k, x, meas)
            yield x

    def forward(
        self,
        kspace: torch.Tensor,
        maps: torch.Tensor,
        mask: torch.Tensor,
        x0: torch.Tensor | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> torch.Tensor:
        """The ``(B, H, W)`` image after unroll ``stop - 1`` (``x0``/``A^H y`` if the range is empty)."""
        x = None
        for image in self.iterate(kspace, maps, mask, x0=x0, start=start, stop=stop):
            x = image
        if x is None:
            x = self.measurement(kspace, maps, mask).aty if x0 is None else x0
        return x

    def learned_scalars(self) -> dict[str, list[float]]:
        """Per-unroll scalar settings for logs, e.g. ``{"mu": [...]}`` (MoDL), ``{"step_size": [...]}``."""
        return {}

    def parameter_count(self) -> int:
        """Number of trainable scalars (shared tensors counted once)."""
        return sum(p.numel() for p in self.parameters())


class MoDL(UnrolledNet):
    """MoDL: ``z_k = D_k(x_k)``; ``x_{k+1} = (A^H A + mu_k I)^-1 (A^H y + mu_k z_k)`` by CG.

    features/depth/denoiser: the :class:`ResidualCNN` denoiser (``denoiser`` ``2d``, ``3d`` or
    ``2+1d``: see the module docstring for cine). shared: one denoiser (and one mu) for all
    unrolls, else one per unroll. mu_init: initial (or fixed) mu > 0; learn_mu: learn it,
    softplus-parameterised so it stays positive. cg_iters/cg_tol: CG cap and relative residual
    tolerance, warm-started at ``z_k``. cg_backward: ``autograd`` (backprop through the CG
    iterations) or ``implicit`` (one more CG solve in the backward pass).
    """

    name = "modl"

    def __init__(
        self,
        num_unrolls: int = 8,
        features: int = 64,
        depth: int = 5,
        shared: bool = True,
        mu_init: float = 0.05,
        learn_mu: bool = True,
        cg_iters: int = 10,
        cg_tol: float = 1e-6,
        cg_backward: str = "autograd",
        denoiser: str = "2d",
    ) -> None:
        super().__init__(num_unrolls, shared, denoiser)
        if cg_backward not in CG_BACKWARDS:
            raise ConfigError(f"cg_backward must be one of {CG_BACKWARDS}, got {cg_backward!r}")
        if int(cg_iters) < 1:
            raise ConfigError(f"cg_iters must be >= 1, got {cg_iters}")
        self.features = int(features)
        self.depth = int(depth)
        self.mu_init = float(mu_init)
        self.learn_mu = bool(learn_mu)
        self.cg_iters = int(cg_iters)
        self.cg_tol = float(cg_tol)
        self.cg_backward = cg_backward
        self.denoisers = nn.ModuleList(
            [ResidualCNN(self.features, self.depth, denoiser) for _ in range(self._copies)]
        )
        self.mu_raw = self._positive_scalars(self.mu_init, self.learn_mu)

    def mu(self, k: int) -> torch.Tensor:
        """Scalar mu of unroll ``k`` (positive)."""
        return self._positive_scalar(self.mu_raw, self.mu_init, k)

    def learned_scalars(self) -> dict[str, list[float]]:
        return self._scalars_per_unroll("mu", self.mu)

    def unroll(self, k: int, x: torch.Tensor, meas: Measurement) -> torch.Tensor:
        k = self._check_unroll(k)
        z = self.denoisers[self._index(k)](x)
        mu = self.mu(k)
        rhs = meas.aty + mu.to(meas.aty.dtype) * z
        if self.cg_backward == "implicit":
            return cg_solve_implicit(meas.op, rhs, mu, z, self.cg_iters, self.cg_tol)
        return conjugate_gradient(
            meas.op.normal, rhs, mu, x0=z, max_iter=self.cg_iters, tol=self.cg_tol
        )

    def unroll_parameters(self, k: int) -> list[nn.Parameter]:
        return self._denoiser_and_scalar_parameters(k, self.mu_raw)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_unrolls": self.num_unrolls,
            "features": self.features,
            "depth": self.depth,
            "shared": self.shared,
            "mu_init": self.mu_init,
            "learn_mu": self.learn_mu,
            "cg_iters": self.cg_iters,
            "cg_tol": self.cg_tol,
            "cg_backward": self.cg_backward,
            **self._denoiser_config(),
        }


class UnrolledPGD(UnrolledNet):
    """Unrolled proximal gradient descent: ``x_{k+1} = D_k(x_k - t_k A^H (A x_k - y))``.

    features/blocks/denoiser: the :class:`ResBlockDenoiser` (``denoiser`` as for MoDL). shared: one denoiser (and one step) for all
    unrolls. step_init: initial (or fixed) step t > 0; learn_step: learn it (softplus-positive).
    """

    name = "pgd"

    def __init__(
        self,
        num_unrolls: int = 8,
        features: int = 64,
        blocks: int = 2,
        shared: bool = False,
        step_init: float = 1.0,
        learn_step: bool = True,
        denoiser: str = "2d",
    ) -> None:
        super().__init__(num_unrolls, shared, denoiser)
        self.features = int(features)
        self.blocks = int(blocks)
        self.step_init = float(step_init)
        self.learn_step = bool(learn_step)
        self.denoisers = nn.ModuleList(
            [ResBlockDenoiser(self.features, self.blocks, denoiser) for _ in range(self._copies)]
        )
        self.step_raw = self._positive_scalars(self.step_init, self.learn_step)

    def step_size(self, k: int) -> torch.Tensor:
        """Scalar gradient step t of unroll ``k`` (positive)."""
        return self._positive_scalar(self.step_raw, self.step_init, k)

    def learned_scalars(self) -> dict[str, list[float]]:
        return self._scalars_per_unroll("step_size", self.step_size)

    def unroll(self, k: int, x: torch.Tensor, meas: Measurement) -> torch.Tensor:
        k = self._check_unroll(k)
        grad = meas.op.normal(x) - meas.aty  # A^H (A x - y) for masked y
        t = self.step_size(k).to(x.dtype)
        return self.denoisers[self._index(k)](x - t * grad)

    def unroll_parameters(self, k: int) -> list[nn.Parameter]:
        return self._denoiser_and_scalar_parameters(k, self.step_raw)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_unrolls": self.num_unrolls,
            "features": self.features,
            "blocks": self.blocks,
            "shared": self.shared,
            "step_init": self.step_init,
            "learn_step": self.learn_step,
            **self._denoiser_config(),
        }


MODELS: dict[str, type[UnrolledNet]] = {"modl": MoDL, "pgd": UnrolledPGD}


def register_model(name: str, cls: type[UnrolledNet]) -> None:
    """Make an :class:`UnrolledNet` subclass buildable by :func:`build_model` under ``name``."""
    MODELS[name] = cls


def build_model(config: dict[str, Any]) -> UnrolledNet:
    """Rebuild a model from ``model.config()`` (``{"name": "modl" | "pgd", **settings}``).

    Raises ConfigError for an unknown name or settings the architecture does not take.
    """
    if not isinstance(config, dict) or "name" not in config:
        raise ConfigError(f"model config must be a dict with a 'name', got {config!r}")
    settings = dict(config)
    name = settings.pop("name")
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    try:
        return MODELS[name](**settings)
    except TypeError as exc:
        raise ConfigError(f"bad settings for model {name!r}: {exc}") from exc
