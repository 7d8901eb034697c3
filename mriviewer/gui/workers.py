"""Background reconstruction: a QObject worker living in a QThread.

The worker prepares the problem (coil maps, the heavy part) and runs each method through
:func:`mriviewer.core.compare.run_method`, inside ``torch.inference_mode`` entered on the worker
thread. Only CPU numpy copies cross to the UI thread, one :class:`IterationPayload` per iteration.
Cancel sets a flag that is checked between iterations, so a run stops within one iteration.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PyQt6.QtCore import QObject, Qt, QThread, pyqtSignal, pyqtSlot

from mriviewer.core.errors import MriViewerError


@dataclass
class RunRequest:
    """Everything a run needs, copied from the UI state (no Qt objects).

    kspace: fully sampled (or already undersampled) ``(C, H, W)`` complex64 slice.
    mask: ``(H, W)`` bool. reference: ``(h, w)`` float32 or None. methods: method names
    (``model:PATH`` for models).
    """

    kspace: np.ndarray
    mask: np.ndarray
    reference: np.ndarray | None
    recon_matrix: tuple[int, int] | None
    methods: list[str]
    device: str = "cpu"
    source: str = ""
    calib: int | None = None
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method settings


@dataclass
class IterationPayload:
    """One iteration of one method, ready for display (original units, cropped)."""

    method: str
    iteration: int
    image: np.ndarray  # (h, w) complex64, CPU copy
    metrics: dict[str, float]
    elapsed: float
    final: bool
    peak_memory_mb: float
    extra: dict[str, Any] = field(default_factory=dict)


def current_rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def ui_friendly_threads() -> int:
    """Intra-op threads for the worker: every core but one (at least one)."""
    return max(1, (os.cpu_count() or 2) - 1)


def describe_error(exc: BaseException, device: str) -> str:
    """A one-line human reason for a failure inside a run."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError) or isinstance(exc, MemoryError):
        return (
            f"out of memory on {device} ({str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        )
    if isinstance(exc, MriViewerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class ReconWorker(QObject):
    """Runs a :class:`RunRequest`; emits per-iteration payloads and per-method outcomes."""

    status = pyqtSignal(str)
    prepared = pyqtSignal(dict)
    iteration = pyqtSignal(object)  # IterationPayload
    method_finished = pyqtSignal(str, dict)
    method_failed = pyqtSignal(str, str)
    failed = pyqtSignal(str)
    finished = pyqtSignal(bool)  # cancelled?

    def __init__(self, request: RunRequest) -> None:
        super().__init__()
        self.request = request
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop; honoured between iterations (thread-safe)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @pyqtSlot()
    def run(self) -> None:
        import torch

        # Leave one core to the UI thread: torch's intra-op threads would otherwise take every
        # core (and spin between ops), starving the event loop on small machines.
        torch.set_num_threads(ui_friendly_threads())
        try:
            with torch.inference_mode():
                self._run()
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a crash
            self.failed.emit(describe_error(exc, self.request.device))
            traceback.print_exc()
        finally:
            self.finished.emit(self.cancelled)

    def _run(self) -> None:
        from mriviewer.core import compare

        req = self.request
        self.status.emit("estimating coil maps…")
        t0 = time.perf_counter()
        problem = compare.prepare_problem(
            req.kspace,
            req.mask,
            reference=req.reference,
            recon_matrix=req.recon_matrix,
            calib=req.calib,
            source=req.source,
        )
        self.prepared.emit(
            {"seconds": time.perf_counter() - t0, "calib": problem.info.get("calib")}
        )
        for name in req.methods:
            if self.cancelled:
                return
            self.status.emit(f"running {name}…")
            try:
                self._run_method(compare, problem, name)
            except Exception as exc:  # noqa: BLE001 - one bad method must not stop the others
                traceback.print_exc()
                self.method_failed.emit(name, describe_error(exc, req.device))

    def _run_method(self, compare: Any, problem: Any, name: str) -> None:
        import torch

        req = self.request
        method = compare.get_method(name, **req.settings.get(name, {}))
        cuda = req.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats(req.device)
        base_rss = current_rss_mb()
        peak = 0.0
        last = None
        for result in compare.run_method(
            method, problem, req.device, should_stop=self.cancelled_fn
        ):
            image = np.array(compare.to_original_units(problem, result.image), dtype=np.complex64)
            metrics = (
                compare.evaluate_image(problem, result.image)
                if problem.reference is not None
                else {}
            )
            if cuda:
                peak = torch.cuda.max_memory_allocated(req.device) / 1e6
            else:
                peak = max(peak, current_rss_mb() - base_rss)
            last = IterationPayload(
                method=name,
                iteration=int(result.iteration),
                image=image,
                metrics=metrics,
                elapsed=float(result.elapsed),
                final=bool(result.final),
                peak_memory_mb=float(peak),
                extra={k: v for k, v in result.extra.items() if isinstance(v, (int, float, str))},
            )
            self.iteration.emit(last)
            if self.cancelled:
                break
        summary = {
            "iterations": 0 if last is None else last.iteration,
            "seconds": 0.0 if last is None else last.elapsed,
            "peak_memory_mb": peak,
            "complete": bool(last is not None and last.final),
            "settings": _jsonable(getattr(method, "settings", lambda: {})()),
        }
        self.method_finished.emit(name, summary)

    def cancelled_fn(self) -> bool:
        return self._cancel.is_set()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return str(obj)


class RunController(QObject):
    """Owns one worker thread at a time: start, cancel, and wait on close."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: ReconWorker | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def start(self, request: RunRequest) -> ReconWorker:
        """Start a worker thread for ``request``; returns the worker to connect signals to."""
        self.stop(wait_ms=5000)
        thread = QThread()
        thread.setObjectName("mriviewer-recon")
        worker = ReconWorker(request)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # direct: quit() is thread-safe, and a queued call would wait on the (blocked) UI loop
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        self.thread, self.worker = thread, worker
        thread.start()
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def stop(self, wait_ms: int = 30000) -> bool:
        """Cancel and wait for the thread to end; True if it ended (or none was running)."""
        if self.thread is None:
            return True
        self.cancel()
        ended = self.thread.wait(wait_ms) if self.thread.isRunning() else True
        if ended:
            self.thread = None
            self.worker = None
        return ended
