"""CPU thread counts that stay steady when other processes compete for the cores.

torch splits each parallel loop into one equal chunk per thread and waits for the slowest: with
as many threads as cores and another busy process on one of them, every loop runs at the pace
of the thread that shares its core (about 2x slower). :func:`pick_threads` counts the processes
that are running right now (``/proc/loadavg``'s runnable count, the median of a few samples
over ~50 ms) and leaves their cores to them. ``OMP_WAIT_POLICY=PASSIVE`` (set in
``mriviewer/__init__.py``) keeps idle OpenMP threads from spinning on top of that.
"""

from __future__ import annotations

import os
import time

#: environment variable: a fixed torch thread count for mriviewer's computations, or ``auto``
THREADS_ENV = "MRIVIEWER_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def other_running(samples: int = 9, interval: float = 0.005) -> int | None:
    """Median number of other runnable tasks (``/proc/loadavg``), or None where unknown."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                running = int(fh.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(max(0, running - 1))  # minus this process, which is reading
        if i + 1 < samples:
            time.sleep(interval)
    return sorted(counts)[len(counts) // 2]


def pick_threads(reserve: int = 0) -> int:
    """Threads for a computation starting now: ``MRIVIEWER_THREADS`` if it is a number, else
    the cores not taken by other running processes, minus ``reserve`` (e.g. 1 for a UI), at
    least 1."""
    raw = os.environ.get(THREADS_ENV, "auto").strip().lower()
    if raw not in ("", "auto"):
        try:
            return max(1, int(raw))
        except ValueError:
            pass
    cores = available_cores()
    busy = other_running() or 0
    return max(1, cores - reserve - busy)
