"""Reconstruction methods from other packages: the entry-point group ``mriviewer.methods``.

An installed distribution declares its methods in its ``pyproject.toml``::

    [project.entry-points."mriviewer.methods"]
    pocs-sense = "mriviewer_pocs:PocsSense"

The entry-point name is the method's name everywhere (the app's method list, ``recon --method``,
``eval --methods``, ``mriviewer methods``). The object it points to is one of (``kind``):

- ``method class``: a class with ``settings()`` and ``iterate(problem, device)`` (the
  :class:`~mriviewer.core.recon.base.ReconMethod` contract of the classical methods), built as
  ``cls(**settings)``;
- ``torch module``: a :class:`torch.nn.Module` subclass with ``iterate(kspace, maps, mask)``
  yielding one ``(B, H, W)`` complex image tensor per iteration, built as ``cls(**settings)``
  and run through :class:`TorchModuleMethod`;
- ``factory``: any other callable taking keyword settings and returning a method object (its
  contract is checked when it is called).

:func:`load_entry_points` is called once, lazily, by :func:`mriviewer.core.compare.load_plugins`
(in every process that builds methods, the app's compute process included). A plugin that fails
to import, breaks the contract or takes a name already in use is recorded with the reason and
skipped; the others are registered.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import numpy as np

from mriviewer.core.errors import MriViewerError, ReconError
from mriviewer.core.recon.base import IterationResult, ReconProblem

GROUP = "mriviewer.methods"
KINDS = ("method class", "torch module", "factory")


@dataclass
class PluginRecord:
    """One entry point of :data:`GROUP`: loaded (``error`` None) or skipped with the reason.

    name: the method name; package: the distribution that declares it (``?`` if unknown);
    value: ``module:attr``; kind: one of :data:`KINDS` (None when the object was not loaded).
    """

    name: str
    package: str
    value: str
    kind: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line: ``plugin method NAME (package P) skipped: REASON``."""
        return f"plugin method {self.name!r} (package {self.package}) skipped: {self.error}"


def _is_torch_module(obj: Any) -> bool:
    if not inspect.isclass(obj):
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return issubclass(obj, torch.nn.Module)


def classify(obj: Any) -> tuple[str, Callable[..., Any]]:
    """``(kind, factory)`` of an entry point's object; raises :class:`ReconError` (the reason)
    when it breaks the contract: not callable, or a class without a callable ``iterate`` (and,
    for a method class, ``settings``)."""
    if not callable(obj):
        raise ReconError(f"{type(obj).__name__} object is not callable (need a class or factory)")
    if not inspect.isclass(obj):
        return "factory", obj
    missing = [
        attr
        for attr in ("iterate",) + (() if _is_torch_module(obj) else ("settings",))
        if not callable(getattr(obj, attr, None))
    ]
    if missing:
        raise ReconError(f"class {obj.__qualname__} has no {' or '.join(missing)} method")
    if _is_torch_module(obj):
        return "torch module", lambda **settings: TorchModuleMethod(obj(**settings), settings)
    return "method class", obj


def check_method(obj: Any, name: str) -> Any:
    """``obj`` if it has callable ``iterate`` and ``settings``, else :class:`ReconError`."""
    missing = [a for a in ("iterate", "settings") if not callable(getattr(obj, a, None))]
    if missing:
        raise ReconError(
            f"plugin method {name!r} built a {type(obj).__name__} without {' or '.join(missing)}"
        )
    return obj


def _package(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or ep.value.split(":", 1)[0].split(".", 1)[0] or "?"


def load_entry_points(
    register: Callable[[str, Callable[..., Any]], None],
    reserved: Iterable[str] = (),
    eps: Iterable[EntryPoint] | None = None,
) -> list[PluginRecord]:
    """Import every entry point of :data:`GROUP` (or ``eps``) and ``register(name, factory)``.

    reserved: names already taken (the built-in methods); such a plugin is skipped, as is a
    second plugin of the same name, a name with a comma, whitespace or the ``model:`` prefix,
    one whose import raises (any exception) and one that breaks the contract
    (:func:`classify`). Never raises for a plugin's fault; returns one record per entry point.
    """
    taken = set(reserved)
    records: list[PluginRecord] = []
    seen: set[tuple[str, str]] = set()
    if eps is None:
        try:
            eps = list(entry_points(group=GROUP))
        except Exception as exc:  # noqa: BLE001 - unreadable metadata of some installed package
            return [PluginRecord("?", "?", GROUP, error=f"cannot list entry points: {exc}")]
    for ep in eps:
        if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        record = PluginRecord(ep.name, _package(ep), ep.value)
        records.append(record)
        if ep.name in taken:
            record.error = "the name is already taken by another method"
            continue
        if not ep.name or ep.name.startswith("model:") or any(c in ep.name for c in ", \t"):
            record.error = "a method name must be non-empty, without commas, spaces or 'model:'"
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
            record.error = f"import failed: {type(exc).__name__}: {exc}"
            continue
        try:
            record.kind, factory = classify(obj)
        except ReconError as exc:
            record.error = f"breaks the method contract: {exc}"
            continue
        if record.kind == "factory":
            factory = _checked_factory(obj, ep.name)
        register(ep.name, _guarded(factory, record))
        taken.add(ep.name)
    return records


def _guarded(factory: Callable[..., Any], record: PluginRecord) -> Callable[..., Any]:
    """``factory`` whose failures are one-line :class:`ReconError` naming the plugin (a
    :class:`MriViewerError` it raises itself passes unchanged)."""

    def build(**settings: Any) -> Any:
        try:
            return factory(**settings)
        except MriViewerError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's bug or a setting it does not take
            raise ReconError(
                f"plugin method {record.name!r} (package {record.package}) could not be built "
                f"with settings {settings}: {type(exc).__name__}: {exc}"
            ) from exc

    return build


def _checked_factory(factory: Callable[..., Any], name: str) -> Callable[..., Any]:
    def build(**settings: Any) -> Any:
        return check_method(factory(**settings), name)

    return build


class TorchModuleMethod:
    """A plugin's :class:`torch.nn.Module` with ``iterate(kspace, maps, mask)`` as a method.

    The module receives ``kspace`` ``(1, C, H, W)`` complex64 (normalised, zero where not
    sampled), ``maps`` ``(1, C, H, W)`` complex64 and ``mask`` ``(1, H, W)`` bool on the run's
    device, and yields one ``(1, H, W)`` (or ``(H, W)``) complex image per iteration; each
    becomes an :class:`IterationResult` (the last one ``final``). Runs under ``torch.no_grad``.
    settings: the module's ``settings()`` when it has one, else the keywords it was built with.
    """

    name = "torch-module"

    def __init__(self, module: Any, settings: dict[str, Any] | None = None) -> None:
        self.module = module
        self._settings = dict(settings or {})

    def settings(self) -> dict[str, Any]:
        own = getattr(self.module, "settings", None)
        return dict(own()) if callable(own) else dict(self._settings)

    def _image(self, tensor: Any, shape: tuple[int, int]) -> np.ndarray:
        out = tensor.detach().to("cpu").numpy() if hasattr(tensor, "detach") else tensor
        out = np.asarray(out)
        if out.ndim == 3 and out.shape[0] == 1:
            out = out[0]
        if out.shape != shape:
            raise ReconError(
                f"plugin method {self.name!r} yielded an image of shape {out.shape}; "
                f"expected (1, {shape[0]}, {shape[1]})"
            )
        return out.astype(np.complex64)

    def iterate(self, problem: ReconProblem, device: str = "cpu") -> Iterator[IterationResult]:
        """Yield the module's iterates as :class:`IterationResult` (iteration 0, 1, ...)."""
        import torch

        if problem.coil_maps is None:
            reason = problem.info.get("calibration_error", "none were estimated")
            raise ReconError(f"{self.name} needs coil maps: {reason}")
        start = time.perf_counter()
        module = self.module.to(device).eval()
        kspace = torch.from_numpy(np.ascontiguousarray(problem.kspace)).to(device)[None]
        maps = torch.from_numpy(np.ascontiguousarray(problem.coil_maps)).to(device)[None]
        mask = torch.from_numpy(np.ascontiguousarray(problem.mask)).to(device)[None]
        pending: IterationResult | None = None
        iterates = iter(module.iterate(kspace, maps, mask))
        for k in range(2**62):
            # no_grad per step, never across a yield (grad mode is thread-local state)
            with torch.no_grad():
                tensor = next(iterates, None)
                image = None if tensor is None else self._image(tensor, problem.shape)
            if image is None:
                break
            if pending is not None:
                yield pending
            pending = IterationResult(self.name, k, image, time.perf_counter() - start)
        if pending is None:
            raise ReconError(f"plugin method {self.name!r} yielded no image")
        pending.final = True
        yield pending
