"""Memory a computation uses, measured from inside the process: the one place that measures it.

- :class:`PeakMemory`: peak memory (MB) of work on a device from a starting point: CUDA's
  ``max_memory_allocated`` after a reset on a GPU, :class:`PeakRss` on the CPU (the app worker).
- :func:`peak_memory_bytes` / :func:`reset_peak_memory`: CUDA max allocated since the last reset
  on a GPU, else this process's lifetime peak RSS (training's ``log.jsonl`` records).
- :class:`PeakRss`: the process's peak resident memory above its level when the measurement
  started. A long-lived process keeps memory freed by earlier work in its allocator, so on
  Linux the glibc allocator is trimmed (``malloc_trim``) and the kernel's high-water mark reset
  (``/proc/self/clear_refs``) first, and the peak is read from ``VmHWM``: no per-operation cost.
  Elsewhere the resident size is sampled at each :meth:`PeakRss.update`.
- :class:`LiveTensorBytes`: bytes of live torch tensor storages created by ops (a
  ``TorchDispatchMode``); exact but it costs time per op, so only ``bench train`` uses it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import sys
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) / 1e3  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; the lifetime peak elsewhere)."""
    value = _status_mb("VmRSS:")
    if value is not None:
        return value
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _trim_allocator() -> None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        pass


def _reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); True if it worked."""
    if _status_mb("VmHWM:") is None:
        return False
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class PeakRss:
    """Peak resident memory (MB) above the level at construction; see the module docstring."""

    def __init__(self) -> None:
        _trim_allocator()
        self.kernel_peak = _reset_high_water_mark()
        self.base = rss_mb()
        self.peak = 0.0

    def update(self) -> float:
        """The peak so far (MB above the starting level)."""
        now = _status_mb("VmHWM:") if self.kernel_peak else None
        self.peak = max(self.peak, (now if now is not None else rss_mb()) - self.base)
        return self.peak


def _is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def reset_peak_memory(device: str | torch.device) -> None:
    """Start a new CUDA peak for :func:`peak_memory_bytes` (no-op on the CPU)."""
    if _is_cuda(device):
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: str | torch.device) -> tuple[int, str]:
    """``(bytes, method)``: CUDA max allocated on a GPU (since :func:`reset_peak_memory`), else
    this process's lifetime peak RSS."""
    if _is_cuda(device):
        return int(torch.cuda.max_memory_allocated(device)), "cuda.max_memory_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss * (1 if sys.platform == "darwin" else 1024)), "process peak RSS"


class PeakMemory:
    """Peak memory (MB) of the work on ``device`` since construction.

    CUDA: ``max_memory_allocated`` after a reset of the peak; CPU: :class:`PeakRss` (the
    process's peak resident memory above its level at construction).
    """

    def __init__(self, device: str | torch.device) -> None:
        self.cuda = _is_cuda(device)
        self.device = device
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        self._rss = None if self.cuda else PeakRss()
        self.peak = 0.0

    def update(self) -> float:
        """The peak so far in MB."""
        if self._rss is None:
            self.peak = torch.cuda.max_memory_allocated(self.device) / 1e6
        else:
            self.peak = self._rss.update()
        return self.peak


class LiveTensorBytes(TorchDispatchMode):
    """Track the bytes of live tensor storages created by ops while active; ``peak`` in bytes."""

    def __init__(self) -> None:
        super().__init__()
        self._refs: dict[int, list[int]] = {}
        self.live = 0
        self.peak = 0

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        entry = self._refs.get(key)
        if entry is None:
            entry = self._refs[key] = [0, storage.nbytes()]
            self.live += entry[1]
            self.peak = max(self.peak, self.live)
        entry[0] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._refs.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs or {}))[0]
            if isinstance(t, torch.Tensor) and t.device.type == "cpu"
        }
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor) and item.device.type == "cpu":
                key = item.untyped_storage().data_ptr()
                # An output on an input's storage (in-place ops such as Adam's updates of the
                # parameters and its moments, views) was not created here: count it only as
                # another reference to a storage this meter already tracks.
                if key in inputs and key not in self._refs:
                    continue
                self._track(item)
        return out
