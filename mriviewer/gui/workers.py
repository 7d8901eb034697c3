"""Background reconstruction: a QObject worker living in a QThread.

The worker thread drives one run: it prepares the problem (coil maps, the heavy part) and runs
each method through :func:`mriviewer.core.compare.run_method` inside ``torch.inference_mode``,
streaming one :class:`IterationPayload` (CPU numpy copies only) per iteration to the UI thread.

Two backends execute the same :func:`execute` steps:

- ``process`` (default): the computation runs in a long-lived compute process (spawned once,
  reused by every run); the worker thread relays its messages. numpy/sigpy/scikit-image hold
  Python's GIL for tens of milliseconds at a time, which would stall the UI thread if the
  computation shared its interpreter; in its own process it cannot (``mriviewer bench gui``).
- ``thread``: the computation runs on the worker thread itself (``MRIVIEWER_WORKER=thread``).

Cancel sets a flag checked between iterations, so a run stops within one iteration.
"""

from __future__ import annotations

import atexit
import os
import threading
import traceback
from collections.abc import Iterator

from PyQt6.QtCore import QObject, Qt, QThread, pyqtSignal, pyqtSlot

from mriviewer.core.errors import MriViewerError  # noqa: F401 - re-exported
from mriviewer.core.runs import (  # noqa: F401 - the run contract lives in core; re-exported
    IterationPayload,
    Message,
    RunRequest,
    describe_error,
    execute,
    expected_iterations,
    ui_friendly_threads,
)

BACKENDS = ("process", "thread")


def default_backend() -> str:
    """``MRIVIEWER_WORKER`` (process or thread), default process."""
    backend = os.environ.get("MRIVIEWER_WORKER", "process").strip().lower()
    return backend if backend in BACKENDS else "process"


# ----- compute process ----------------------------------------------------------------------
#: how much the compute process lowers its scheduling priority (Unix ``nice``); 0 by default:
#: the UI sleeps between repaints, so the kernel already gives it the CPU promptly, and with two
#: CPU hogs running beside it (`mriviewer bench gui --max-iter 30`, 2 cores) nice 5 / 10 made
#: l1-wavelet 2.3x / 8.6x slower without lowering the UI's lateness (60 / 68 / 71 ms max).
#: ``MRIVIEWER_COMPUTE_NICE=N`` makes reconstructions yield to other work, e.g. a training run.
COMPUTE_NICENESS = 0
#: thread-count variables of the BLAS / OpenMP runtimes numpy, scipy and sigpy use
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def compute_niceness() -> int:
    """How much the compute process lowers its priority (``MRIVIEWER_COMPUTE_NICE``, default
    :data:`COMPUTE_NICENESS`, clamped to 0..19)."""
    raw = os.environ.get("MRIVIEWER_COMPUTE_NICE", "").strip()
    try:
        value = int(raw) if raw else COMPUTE_NICENESS
    except ValueError:
        value = COMPUTE_NICENESS
    return min(max(value, 0), 19)


def _lower_priority() -> None:
    niceness = compute_niceness()
    if niceness and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError:
            pass


def _compute_main(conn, cancel_event) -> None:
    """Entry point of the compute process: serve requests until told to stop."""
    _lower_priority()
    import torch

    _preload()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        # leave a core to the UI process and those other processes take now (issue 14)
        torch.set_num_threads(ui_friendly_threads())
        if request is None:
            return
        for message in execute(request, cancel_event.is_set):
            try:
                conn.send(message)
            except (BrokenPipeError, OSError):
                return


def _preload() -> None:
    """Import what every run needs while the process waits for its first request (sigpy,
    scikit-image and the core's modules take about half a second to import), so the first Run
    does not pay for it."""
    import importlib

    for name in (
        "mriviewer.core.compare",
        "mriviewer.core.physics.espirit",
        "mriviewer.core.physics.sampling",
        "mriviewer.core.reference",
        "mriviewer.core.metrics",
        "mriviewer.core.recon.cg_sense",
        "mriviewer.core.recon.l1_wavelet",
        "sigpy.mri",
    ):
        try:
            importlib.import_module(name)
        except ImportError:  # reported by the run that needs it
            pass


class ComputeServer:
    """One spawned compute process with a duplex pipe and a shared cancel flag."""

    def __init__(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.cancel_event = ctx.Event()
        self.process = ctx.Process(
            target=_compute_main,
            args=(child, self.cancel_event),
            name="mriviewer-compute",
            daemon=True,
        )
        # BLAS/OpenMP read their thread counts when the child imports numpy: give it every core
        # but one (unless the user set them), as torch.set_num_threads does for torch
        saved = {name: os.environ.get(name) for name in _THREAD_ENV}
        for name in _THREAD_ENV:
            os.environ.setdefault(name, str(ui_friendly_threads()))
        try:
            self.process.start()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
        child.close()

    def alive(self) -> bool:
        return self.process.is_alive()

    def shutdown(self, timeout: float = 2.0) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        self.conn.close()

    def terminate(self) -> None:
        self.process.terminate()
        self.process.join(2.0)


_SERVER: ComputeServer | None = None
_SERVER_LOCK = threading.Lock()


def compute_server() -> ComputeServer:
    """The shared compute process (started on first use, restarted if it died)."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None or not _SERVER.alive():
            _SERVER = ComputeServer()
        return _SERVER


def warm_up_compute_server() -> bool:
    """Start the compute process ahead of the first run; False if it cannot be started."""
    try:
        compute_server()
    except (RuntimeError, OSError):
        return False
    return True


def discard_compute_server() -> None:
    """Terminate the compute process (after a crash or a stuck run); the next run respawns it."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is not None:
            _SERVER.terminate()
            _SERVER = None


@atexit.register
def _shutdown_server() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.shutdown()
        _SERVER = None


# ----- Qt side --------------------------------------------------------------------------------
class ReconWorker(QObject):
    """Runs a :class:`RunRequest`; emits per-iteration payloads and per-method outcomes."""

    status = pyqtSignal(str)
    prepared = pyqtSignal(dict)
    method_started = pyqtSignal(str, dict)
    iteration = pyqtSignal(object)  # IterationPayload
    method_finished = pyqtSignal(str, dict)
    method_failed = pyqtSignal(str, str)
    failed = pyqtSignal(str)
    finished = pyqtSignal(bool)  # cancelled?

    def __init__(self, request: RunRequest, backend: str | None = None) -> None:
        super().__init__()
        self.request = request
        self.backend = backend or default_backend()
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        self._cancel = threading.Event()
        self._server: ComputeServer | None = None
        self.emitted_after_cancel = 0  # iterations passed to the UI after cancel()
        self.done = False  # set just before ``finished`` (the thread then quits)

    def cancel(self) -> None:
        """Ask the run to stop; honoured between iterations (thread-safe). At most one more
        iteration (the one in flight) reaches the UI after this."""
        self._cancel.set()
        if self.backend == "process" and self._server is not None:
            self._server.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancelled_fn(self) -> bool:
        return self._cancel.is_set()

    @pyqtSlot()
    def run(self) -> None:
        cancelled = False
        try:
            if self.backend == "process":
                try:
                    self._server = compute_server()
                except (RuntimeError, OSError) as exc:  # e.g. spawn refused in this program
                    self.status.emit(f"compute process unavailable ({exc}); running in a thread")
                    self.backend = "thread"
            if self.backend == "thread":
                import torch

                # leave a core to the UI thread (torch would take them all)
                torch.set_num_threads(ui_friendly_threads())
                messages = execute(self.request, self.cancelled_fn)
            else:
                messages = self._relay()
            for message in messages:
                if message[0] == "done":
                    cancelled = bool(message[1]) or self.cancelled
                    break
                if message[0] == "iteration" and self.cancelled:
                    if self.emitted_after_cancel >= 1:
                        continue  # computed before the stop request reached the process
                    self.emitted_after_cancel += 1
                self._dispatch(message)
        except Exception as exc:  # noqa: BLE001 - never let the worker thread die silently
            traceback.print_exc()
            self.failed.emit(describe_error(exc, self.request.device))
        finally:
            self.done = True
            self.finished.emit(cancelled or self.cancelled)

    def _dispatch(self, message: Message) -> None:
        kind = message[0]
        if kind == "status":
            self.status.emit(message[1])
        elif kind == "prepared":
            self.prepared.emit(message[1])
        elif kind == "method_started":
            self.method_started.emit(message[1], message[2])
        elif kind == "iteration":
            self.iteration.emit(message[1])
        elif kind == "method_finished":
            self.method_finished.emit(message[1], message[2])
        elif kind == "method_failed":
            self.method_failed.emit(message[1], message[2])
        elif kind == "failed":
            self.failed.emit(message[1])

    def _relay(self) -> Iterator[Message]:
        """Send the request to the compute process and yield its messages."""
        server = self._server or compute_server()
        server.cancel_event.clear()
        self._server = server
        if self.cancelled:
            server.cancel_event.set()
        try:
            server.conn.send(self.request)
        except (BrokenPipeError, OSError) as exc:  # the process died since the last run
            discard_compute_server()
            self.status.emit(f"compute process unavailable ({exc}); running in a thread")
            yield from execute(self.request, self.cancelled_fn)
            return
        while True:
            if self.cancelled:
                server.cancel_event.set()
            if server.conn.poll(0.05):
                try:
                    message = server.conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is not None:
                    yield message
                    if message[0] == "done":
                        return
                    continue
            if not server.alive():
                code = server.process.exitcode
                discard_compute_server()
                reason = "out of memory?" if code in (-9, 137) else f"exit code {code}"
                yield ("failed", f"the compute process stopped unexpectedly ({reason})")
                yield ("done", self.cancelled)
                return


class RunController(QObject):
    """Owns one worker thread at a time: start, cancel, and wait on close."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: ReconWorker | None = None

    @property
    def running(self) -> bool:
        """True while a run is in progress (a finished worker's thread is given time to quit)."""
        if self.thread is None or not self.thread.isRunning():
            return False
        if self.worker is not None and self.worker.done:
            return not self.thread.wait(2000)
        return True

    def start(self, request: RunRequest, backend: str | None = None) -> ReconWorker:
        """Start a worker thread for ``request``; returns the worker to connect signals to."""
        self.stop(wait_ms=5000)
        thread = QThread()
        thread.setObjectName("mriviewer-recon")
        worker = ReconWorker(request, backend)
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
        """Cancel and wait for the thread to end; a compute process that does not stop in time
        is terminated. True if the thread ended (or none was running)."""
        if self.thread is None:
            return True
        self.cancel()
        ended = self.thread.wait(wait_ms) if self.thread.isRunning() else True
        if not ended and self.worker is not None and self.worker.backend == "process":
            discard_compute_server()
            ended = self.thread.wait(5000)
        if ended:
            self.thread = None
            self.worker = None
        return ended
