"""One comparison run as a stream of messages, Qt-free: what the app's compute process (or
worker thread) executes and what a headless :class:`mriviewer.core.session.ComparisonSession`
drives directly.

:func:`execute` prepares the problem (coil maps, reference) once and streams every method
through :func:`mriviewer.core.compare.stream` inside ``torch.inference_mode``; each iteration
becomes an :class:`IterationPayload` (CPU numpy copies only, original units, cropped, with its
metrics).
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mriviewer.core.errors import MriViewerError


@dataclass
class RunRequest:
    """Everything a run needs, copied from the UI state (plain data, picklable, no Qt).

    kspace: fully sampled (or already undersampled) ``(C, H, W)`` complex64 slice.
    mask: ``(H, W)`` bool. reference: ``(h, w)`` float32 or None. A cine series is
    ``(T, C, H, W)`` k-space (fully sampled), a ``(T, H, W)`` k-t mask and a ``(T, h, w)``
    reference (see :func:`_execute_cine`). methods: method names
    (``model:PATH`` for models). settings: per-method keyword settings. imports: modules to
    import before the run (they may register extra methods with ``compare.register_method``).
    """

    kspace: np.ndarray
    mask: np.ndarray
    reference: np.ndarray | None
    recon_matrix: tuple[int, int] | None
    methods: list[str]
    device: str = "cpu"
    source: str = ""
    calib: int | None = None
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    imports: list[str] = field(default_factory=list)
    #: metric convention (``rss`` | ``sense``) and region (``all`` | ``foreground``)
    reference_kind: str = "rss"
    metrics_region: str = "all"
    #: the data's own sampling: True (fully sampled), False (undersampled), None (detect)
    fully_sampled: bool | None = None


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


def ui_friendly_threads() -> int:
    """torch intra-op threads for the computation: every core but one (at least one), less the
    cores other running processes take right now (``MRIVIEWER_THREADS=N`` fixes it; see
    :func:`mriviewer.core.threads.pick_threads`)."""
    from mriviewer.core.threads import pick_threads

    return pick_threads(reserve=1)


def describe_error(exc: BaseException, device: str) -> str:
    """A one-line human reason for a failure inside a run."""
    import torch

    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        detail = str(exc).splitlines()[0] if str(exc) else "no detail"
        return f"out of memory on {device} ({detail})"
    if isinstance(exc, MriViewerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


Message = tuple  # ("status", text) | ("prepared", info) | ("iteration", payload) | ...


def expected_iterations(settings: dict[str, Any]) -> int | None:
    """Iterations a method announces in its settings (``max_iter`` or ``unrolls``), if any."""
    for key in ("max_iter", "unrolls"):
        value = settings.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return int(value)
    return None


def execute(request: RunRequest, should_stop: Callable[[], bool]) -> Iterator[Message]:
    """Run ``request`` and yield messages; never raises (failures become messages).

    Messages: ``("status", text)``, ``("prepared", info)``, ``("method_started", name, info)``
    (``info["expected_iterations"]``: int or None), ``("iteration", IterationPayload)``,
    ``("method_finished", name, summary)``, ``("method_failed", name, reason)``,
    ``("failed", reason)``, and last ``("done", cancelled)``.
    """
    import torch

    try:
        with torch.inference_mode():
            yield from _execute(request, should_stop)
    except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a crash
        traceback.print_exc()
        yield ("failed", describe_error(exc, request.device))
    yield ("done", bool(should_stop()))


def prepared_message(problem: Any, seconds: float, metrics_region: str, **extra: Any) -> Message:
    """``("prepared", info)`` for a 2-D or cine problem: seconds, calibration, the reference
    (the convention's image the metrics use), R and warnings (``extra`` adds keys)."""
    reference = None if problem.reference is None else np.array(problem.reference)
    info = {
        "seconds": seconds,
        "calib": problem.info.get("calib"),
        "reference": reference,
        "reference_kind": problem.reference_kind,
        "metrics_region": metrics_region,
        "acceleration": problem.info.get("acceleration"),
        **extra,
        "warnings": list(problem.warnings),
    }
    return ("prepared", info)


def _execute(req: RunRequest, should_stop: Callable[[], bool]) -> Iterator[Message]:
    from mriviewer.core import compare

    if np.ndim(req.kspace) == 4:  # (T, C, H, W): a cine series
        yield from _execute_cine(req, should_stop)
        return
    for module in req.imports:
        importlib.import_module(module)
    yield ("status", "preparing…")
    t0 = time.perf_counter()
    problem = compare.prepare_problem(
        req.kspace,
        req.mask,
        reference=req.reference,
        recon_matrix=req.recon_matrix,
        calib=req.calib,
        source=req.source,
        reference_kind=req.reference_kind,
        metrics_region=req.metrics_region,
        fully_sampled=req.fully_sampled,
        defer_maps=True,
    )
    yield prepared_message(problem, time.perf_counter() - t0, problem.metrics_region)
    # methods that need no coil maps (zero-filled RSS, GRAPPA combined by RSS) run before the
    # maps are estimated, so their images are on screen at once
    first = []
    for name in req.methods:
        try:
            method = compare.get_method(name, **req.settings.get(name, {}))
        except Exception:  # noqa: BLE001 - reported when the method runs
            continue
        if not compare.needs_coil_maps(method):
            first.append(name)
    order = first + [name for name in req.methods if name not in first]
    for name in order:
        if should_stop():
            return
        if name not in first and problem.coil_maps is None and "maps_request" in problem.info:
            yield ("status", "estimating coil maps…")
            t1 = time.perf_counter()
            compare.estimate_maps(problem)
            yield ("status", f"coil maps in {time.perf_counter() - t1:.1f} s")
        yield ("status", f"running {name}…")
        try:
            yield from _run_method(compare, problem, name, req, should_stop)
        except Exception as exc:  # noqa: BLE001 - one bad method must not stop the others
            if not isinstance(exc, MriViewerError):  # an expected refusal needs no traceback
                traceback.print_exc()
            yield ("method_failed", name, describe_error(exc, req.device))


def _run_method(
    compare: Any, problem: Any, name: str, req: RunRequest, should_stop: Callable[[], bool]
) -> Iterator[Message]:
    method = compare.get_method(name, **req.settings.get(name, {}))
    settings = getattr(method, "settings", dict)()
    yield ("method_started", name, {"expected_iterations": expected_iterations(settings)})
    from mriviewer.core.memory import PeakMemory

    # CUDA: max allocated after a reset; CPU: the process's peak resident memory above its level
    # before the method (the compute process is reused, so the allocator is trimmed and the
    # kernel's peak reset first)
    memory = PeakMemory(req.device)
    peak = 0.0
    last = None
    # the complete record (original units, cropped, metrics or ground-truth-free measures)
    for record in compare.stream(method, problem, req.device, should_stop=should_stop):
        peak = memory.update()
        last = IterationPayload(
            method=name,
            iteration=record.iteration,
            image=record.image,
            metrics=record.metrics,
            elapsed=record.elapsed,
            final=record.final,
            peak_memory_mb=float(peak),
            extra=compare.scalar_extra(record.extra),
        )
        yield ("iteration", last)
        if should_stop():
            break
    summary = {
        "iterations": 0 if last is None else last.iteration,
        "seconds": 0.0 if last is None else last.elapsed,
        "peak_memory_mb": peak,
        "complete": bool(last is not None and last.final),
        "settings": jsonable(settings),
    }
    yield ("method_finished", name, summary)


def _execute_cine(req: RunRequest, should_stop: Callable[[], bool]) -> Iterator[Message]:
    """The cine twin of :func:`_execute`: ``kspace`` ``(T, C, H, W)`` (fully sampled, or
    undersampled with ``fully_sampled`` False: no reference, ground-truth-free metrics), ``mask``
    ``(T, H, W)``, ``reference`` ``(T, h, w)`` or None; methods from
    :data:`mriviewer.core.cine.CINE_METHODS`. Each payload's image is ``(T, h, w)`` complex64 and
    its metrics are over the series (fastMRI per-volume, frames as slices) plus
    ``psnr_per_frame`` (a list)."""
    from mriviewer.core import cine, compare
    from mriviewer.core.memory import PeakMemory

    yield ("status", "preparing the cine series (coil maps of the time-averaged data)…")
    t0 = time.perf_counter()
    reference = req.reference if req.reference_kind == "rss" else None
    problem = cine.prepare_cine_problem(
        req.kspace,
        req.mask,
        reference=reference,
        recon_matrix=req.recon_matrix,
        reference_kind=req.reference_kind,
        source=req.source,
        fully_sampled=req.fully_sampled,
        metrics_region=req.metrics_region,
    )
    yield prepared_message(
        problem,
        time.perf_counter() - t0,
        problem.metrics_region,
        kt_mask=problem.info.get("mask"),
    )
    for name in req.methods:
        if should_stop():
            return
        yield ("status", f"running {name}…")
        try:
            method = cine.get_cine_method(name, **req.settings.get(name, {}))
            settings = method.settings()
            yield ("method_started", name, {"expected_iterations": expected_iterations(settings)})
            memory = PeakMemory(req.device)
            peak, last = 0.0, None
            for record in cine.stream_cine(method, problem, req.device):
                peak = memory.update()
                metrics = dict(record.metrics)
                last = IterationPayload(
                    method=name,
                    iteration=record.iteration,
                    image=record.image,
                    metrics=metrics,
                    elapsed=record.elapsed,
                    final=record.final,
                    peak_memory_mb=float(peak),
                    extra=compare.scalar_extra(record.extra),
                )
                yield ("iteration", last)
                if should_stop():
                    break
            yield (
                "method_finished",
                name,
                {
                    "iterations": 0 if last is None else last.iteration,
                    "seconds": 0.0 if last is None else last.elapsed,
                    "peak_memory_mb": peak,
                    "complete": bool(last is not None and last.final),
                    "settings": jsonable(settings),
                },
            )
        except Exception as exc:  # noqa: BLE001 - one bad method must not stop the others
            if not isinstance(exc, MriViewerError):
                traceback.print_exc()
            yield ("method_failed", name, describe_error(exc, req.device))


def jsonable(obj: Any) -> Any:
    """``obj`` with JSON-ready types only: dict keys as text, tuples as lists, others as text."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return str(obj)
