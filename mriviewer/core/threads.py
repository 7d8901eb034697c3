"""CPU thread counts that stay steady when other processes compete for the cores.

torch splits each parallel loop into one equal chunk per thread and waits for the slowest: with
as many threads as cores and another busy process on one of them, every loop runs at the pace
of the thread that shares its core (about 2x slower). :func:`pick_threads` counts the processes
that are running right now (``/proc/loadavg``'s runnable count less this process's own running
threads, the median of a few samples) and leaves their cores to them; :class:`ThreadGovernor`
repeats that every few seconds during a long computation (training), so a neighbour that starts
later takes its core back within seconds. ``mriviewer/__init__.py`` lets idle OpenMP threads
spin only briefly (``GOMP_SPINCOUNT``) before they sleep: long enough to bridge the gaps between
the many short parallel loops of a step (a thread woken from sleep costs tens of microseconds per
loop, which made two threads slower than one), short enough not to steal a busy neighbour's core.
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


def own_running() -> int:
    """Threads of this process in state R (running or runnable) right now, at least 1 (the
    caller); 1 where ``/proc/self/task`` cannot be read."""
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii", errors="replace") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == "R"
    return max(1, count)


def other_running(samples: int = 9, interval: float = 0.005) -> int | None:
    """Median number of runnable tasks of other processes (``/proc/loadavg``'s count less this
    process's own running threads), or None where unknown."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                running = int(fh.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(max(0, running - own_running()))
        if i + 1 < samples:
            time.sleep(interval)
    return sorted(counts)[len(counts) // 2]


def fixed_threads() -> int | None:
    """A thread count fixed by the user: ``MRIVIEWER_THREADS`` if it is a number, else
    ``OMP_NUM_THREADS`` if it is one, else None (``auto``)."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        raw = os.environ.get(name, "").strip().lower()
        if raw not in ("", "auto"):
            try:
                return max(1, int(raw))
            except ValueError:
                pass
    return None


def pick_threads(reserve: int = 0, samples: int = 9) -> int:
    """Threads for a computation starting now: the user's fixed count (:func:`fixed_threads`:
    ``MRIVIEWER_THREADS``, then ``OMP_NUM_THREADS``), else the cores not taken by other running
    processes, minus ``reserve`` (e.g. 1 for a UI), at least 1."""
    fixed = fixed_threads()
    if fixed is not None:
        return fixed
    cores = available_cores()
    busy = other_running(samples=samples) or 0
    return max(1, cores - reserve - busy)


class ThreadGovernor:
    """Keeps torch's CPU thread count at :func:`pick_threads` during a long computation.

    Call :meth:`update` between units of work (training steps); at most every ``interval_s``
    seconds it samples the load (3 samples, about 4 ms) and calls ``torch.set_num_threads``
    when the count changes. Does nothing when the count is fixed (``MRIVIEWER_THREADS=N`` or
    ``OMP_NUM_THREADS``, or ``enabled=False``, e.g. for an explicit ``--threads``).
    ``changes`` counts the adjustments made.
    """

    def __init__(self, reserve: int = 0, interval_s: float = 2.0, enabled: bool = True) -> None:
        self.reserve = reserve
        self.interval_s = float(interval_s)
        self.enabled = enabled and fixed_threads() is None
        self.changes = 0
        self._last = -float("inf")

    def update(self) -> int:
        """Re-pick the thread count if ``interval_s`` has passed; returns the count in use."""
        import torch

        if not self.enabled:
            return torch.get_num_threads()
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return torch.get_num_threads()
        self._last = now
        threads = pick_threads(self.reserve, samples=3)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            self.changes += 1
        return threads
