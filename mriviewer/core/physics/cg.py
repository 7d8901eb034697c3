"""Batched complex conjugate gradient with per-sample step sizes and stopping."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch


def _batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample real part of ``<a, b> = sum conj(a) b`` over all but the first axis -> ``(B,)``."""
    return (a.conj() * b).real.flatten(1).sum(dim=1)


def conjugate_gradient_iterates(
    normal_op: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    mu: float | torch.Tensor = 0.0,
    x0: torch.Tensor | None = None,
    max_iter: int = 10,
    tol: float = 1e-6,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(i, x_i)`` after each iteration of :func:`conjugate_gradient` (same arguments,
    same arithmetic), so a caller can stream the iterates as they are computed. Stops early
    when every sample has converged (nothing more is yielded)."""
    batch = rhs.shape[0]
    view = (batch,) + (1,) * (rhs.dim() - 1)
    if not isinstance(mu, torch.Tensor):
        mu = torch.tensor(float(mu), device=rhs.device, dtype=rhs.real.dtype)
    mu_b = mu.reshape(-1).expand(batch).reshape(view) if mu.numel() > 1 else mu.reshape(())

    def system(v: torch.Tensor) -> torch.Tensor:
        return normal_op(v) + mu_b * v

    if x0 is None:
        x = torch.zeros_like(rhs)
        r = rhs.clone()
    else:
        x = x0
        r = rhs - system(x)
    p = r
    rs_old = _batch_dot(r, r)
    rhs_norm_sq = _batch_dot(rhs, rhs)
    threshold = (tol**2) * rhs_norm_sq
    active = rs_old > threshold
    for i in range(max_iter):
        if not bool(active.any()):
            return
        ap = system(p)
        denom = _batch_dot(p, ap)
        safe = active & (denom.abs() > 0)
        alpha = torch.where(safe, rs_old / torch.where(safe, denom, torch.ones_like(denom)), 0.0)
        alpha_v = alpha.reshape(view).to(rhs.dtype)
        x = x + alpha_v * p
        r = r - alpha_v * ap
        rs_new = _batch_dot(r, r)
        beta = torch.where(safe, rs_new / torch.where(safe, rs_old, torch.ones_like(rs_old)), 0.0)
        p = r + beta.reshape(view).to(rhs.dtype) * p
        rs_old = torch.where(safe, rs_new, rs_old)
        active = safe & (rs_new > threshold)
        yield i, x


def conjugate_gradient(
    normal_op: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    mu: float | torch.Tensor = 0.0,
    x0: torch.Tensor | None = None,
    max_iter: int = 10,
    tol: float = 1e-6,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Solve ``(N + mu I) x = rhs`` per sample, N Hermitian positive semi-definite.

    normal_op: maps ``(B, ...)`` to ``(B, ...)`` (e.g. ``SenseOperator.normal``).
    rhs: ``(B, ...)`` complex. mu: scalar or ``(B,)`` tensor. x0: warm start (default zeros).
    Each sample has its own alpha and beta and stops once its residual norm falls below
    ``tol * ||rhs||`` (its update is frozen afterwards). At most ``max_iter`` iterations.
    Differentiable by autograd. callback(i, x) is called after each iteration
    (:func:`conjugate_gradient_iterates` yields the iterates instead).
    """
    x = torch.zeros_like(rhs) if x0 is None else x0
    for i, x in conjugate_gradient_iterates(normal_op, rhs, mu, x0, max_iter, tol):
        if callback is not None:
            callback(i, x)
    return x
