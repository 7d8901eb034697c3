"""Which torch device to compute on: one resolution rule for the CLI, the app and training.

``auto`` (or an empty setting) means the best available device, ``cuda`` when PyTorch sees a GPU
and ``cpu`` otherwise; anything else must be a device torch understands (``cpu``, ``cuda``,
``cuda:1``, ...), and a CUDA device is refused when CUDA is not available. Peak memory of a
computation on a device is measured by :mod:`mriviewer.core.memory`.
"""

from __future__ import annotations

import torch

from mriviewer.core.errors import ConfigError

AUTO = "auto"


def best_device() -> str:
    """``cuda`` when available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None = AUTO) -> str:
    """``auto`` / ``""`` / None -> :func:`best_device`; otherwise the checked device string.

    Raises ConfigError for a string torch cannot parse, or a CUDA device without CUDA.
    Returns torch's spelling of the device (``cpu``, ``cuda``, ``cuda:1``).
    """
    if device in (AUTO, "", None):
        return best_device()
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r} ({exc})") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return str(parsed)


def is_cuda(device: str | torch.device) -> bool:
    """True for a CUDA device (``cuda``, ``cuda:1``)."""
    return torch.device(device).type == "cuda"


def synchronize(device: str | torch.device) -> None:
    """Wait for queued work on a CUDA device (no-op on the CPU), e.g. before reading a clock."""
    if is_cuda(device):
        torch.cuda.synchronize(device)


__all__ = ["AUTO", "best_device", "is_cuda", "resolve_device", "synchronize"]
