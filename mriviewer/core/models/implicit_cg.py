"""CG solve of ``(A^H A + mu I) x = b`` with an implicit backward (one more CG solve).

Forward runs :func:`conjugate_gradient` without recording a graph. Backward uses that the
system matrix ``H = A^H A + mu I`` is Hermitian: for a real loss with incoming gradient ``g``
(PyTorch's convention ``dL = Re <g, dx>``), ``grad_b = H^-1 g`` and
``grad_mu = -Re <grad_b, x>`` summed over the batch (``dx/dmu = -H^-1 x``). Exact when CG has
converged; memory does not grow with the number of CG iterations.
"""

from __future__ import annotations

from typing import Any

import torch

from mriviewer.core.physics.cg import conjugate_gradient
from mriviewer.core.physics.sense import SenseOperator


class _ImplicitCG(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        rhs: torch.Tensor,
        mu: torch.Tensor,
        x0: torch.Tensor | None,
        op: SenseOperator,
        max_iter: int,
        tol: float,
    ) -> torch.Tensor:
        with torch.no_grad():
            x = conjugate_gradient(op.normal, rhs, mu.detach(), x0, max_iter=max_iter, tol=tol)
        ctx.save_for_backward(x, mu)
        ctx.op = op
        ctx.max_iter = max_iter
        ctx.tol = tol
        return x

    @staticmethod
    def backward(ctx: Any, grad_x: torch.Tensor):  # type: ignore[override]
        x, mu = ctx.saved_tensors
        with torch.no_grad():
            grad_rhs = conjugate_gradient(
                ctx.op.normal, grad_x, mu.detach(), None, max_iter=ctx.max_iter, tol=ctx.tol
            )
            grad_mu = None
            if ctx.needs_input_grad[1]:
                grad_mu = (-(grad_rhs.conj() * x).real.sum()).reshape(mu.shape).to(mu.dtype)
        return grad_rhs, grad_mu, None, None, None, None


def cg_solve_implicit(
    op: SenseOperator,
    rhs: torch.Tensor,
    mu: torch.Tensor,
    x0: torch.Tensor | None = None,
    max_iter: int = 10,
    tol: float = 1e-6,
) -> torch.Tensor:
    """``(B, H, W)`` solution of ``(A^H A + mu I) x = rhs``; gradients wrt rhs and scalar mu.

    The warm start ``x0`` is treated as a constant (at convergence the solution does not depend
    on it).
    """
    x0 = None if x0 is None else x0.detach()
    return _ImplicitCG.apply(rhs, mu, x0, op, max_iter, tol)
