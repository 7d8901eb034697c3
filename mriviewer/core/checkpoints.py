"""Trained models on disk: safetensors weights + a JSON model card, and the bundled model zoo.

A saved model is two files side by side, ``NAME.safetensors`` (weights, never pickled) and
``NAME.json`` (the :class:`ModelCard`: architecture settings from ``model.config()``, training
strategy, data, mask, loss, steps, validation metrics, parameter count, tensor shapes, version).
A folder path means ``FOLDER/model.safetensors`` + ``FOLDER/model.json``.

Stable API: :func:`save_model`, :func:`load_model`, :func:`list_models`, :func:`resolve_model`,
:func:`describe_model` (``mriviewer info model:X``). A saved model as a reconstruction method
(``model:X``) is :func:`mriviewer.core.recon.model_method.load_model_method`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mriviewer import __version__
from mriviewer.core.errors import ConfigError, ModelCardError
from mriviewer.core.files import atomic_write_path, atomic_write_text
from mriviewer.core.models import UnrolledNet, build_model
from mriviewer.core.resources import resource_path

CARD_FORMAT = "mriviewer-model-card/1"
DEFAULT_STEM = "model"


@dataclass
class ModelCard:
    """Everything needed to rebuild a model and to judge what it was trained for.

    architecture: ``model.config()``. strategy: ``{"name": "e2e"|"checkpoint"|"gleam",
    "unrolls": N, "modules": M}``. training_data: free description (folders, slice counts).
    mask: the mask spec dict; accelerations: the training accelerations. loss: ``"l1"``/``"l2"``.
    steps: optimiser steps taken. validation: metrics on the validation set. parameters:
    trainable scalar count. tensors: ``{name: shape}`` of the weights (checked on load).
    extra: anything else (e.g. pruning information added by other tools).
    """

    architecture: dict[str, Any] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    mask: dict[str, Any] = field(default_factory=dict)
    accelerations: list[float] = field(default_factory=list)
    loss: str = ""
    steps: int = 0
    validation: dict[str, Any] = field(default_factory=dict)
    parameters: int = 0
    tensors: dict[str, list[int]] = field(default_factory=dict)
    mriviewer_version: str = __version__
    created: str = ""
    format: str = CARD_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Card from a dictionary; unknown top-level keys are kept under ``extra``."""
        known = {f.name for f in fields(cls)}
        card = cls(**{k: v for k, v in data.items() if k in known})
        unknown = {k: v for k, v in data.items() if k not in known}
        if unknown:
            card.extra = {**card.extra, **unknown}
        return card


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights.safetensors, card.json)`` for a weights file, a card file or a folder."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path, path.with_suffix(".json")
    if path.suffix == ".json":
        return path.with_suffix(".safetensors"), path
    return path / f"{DEFAULT_STEM}.safetensors", path / f"{DEFAULT_STEM}.json"


def _export_tensors(
    model: torch.nn.Module, card: ModelCard
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any] | None]:
    """Weights to save, pruning masks (``NAME.mask``) and their card record (None if unpruned);
    see :mod:`mriviewer.core.pruning.record`."""
    from mriviewer.core.pruning.record import export_for_save

    return export_for_save(model, card.to_dict())


def save_model(
    path: str | Path, model: UnrolledNet, card: ModelCard | dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights (safetensors) and its card (JSON) atomically; returns the weights path.

    path: ``X.safetensors`` (card at ``X.json``) or a folder (``model.safetensors`` inside).
    The card's architecture, parameter count, tensor shapes, version and date are filled in
    from the model; everything else (strategy, data, mask, loss, steps, metrics) from ``card``.
    """
    from safetensors.torch import save_file

    weights_path, card_path = model_paths(path)
    if card is None:
        card = ModelCard()
    elif isinstance(card, dict):
        card = ModelCard.from_dict(card)
    tensors, masks, pruning = _export_tensors(model, card)
    card.architecture = model.config()
    card.parameters = model.parameter_count()
    card.tensors = {k: list(v.shape) for k, v in tensors.items()}
    if pruning is not None:
        card.extra = {**card.extra, "pruning": pruning}
    card.mriviewer_version = __version__
    card.created = card.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    card.format = CARD_FORMAT
    try:
        with atomic_write_path(weights_path) as tmp:
            save_file({**tensors, **masks}, str(tmp), metadata={"format": CARD_FORMAT})
        atomic_write_text(card_path, json.dumps(card.to_dict(), indent=2, sort_keys=False) + "\n")
    except OSError as exc:
        raise ModelCardError(f"cannot write model ({exc})", weights_path) from exc
    return weights_path


def read_card(path: str | Path) -> ModelCard:
    """Read and validate the JSON card of a saved model (weights path, card path or folder)."""
    _, card_path = model_paths(path)
    if not card_path.is_file():
        raise ModelCardError(
            "model card not found (expected a JSON card beside the weights)", card_path
        )
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"model card is not valid JSON ({exc})", card_path) from exc
    if not isinstance(data, dict):
        raise ModelCardError("model card must be a JSON object", card_path)
    if not isinstance(data.get("architecture"), dict) or "name" not in data["architecture"]:
        raise ModelCardError("model card has no 'architecture' with a model 'name'", card_path)
    try:
        return ModelCard.from_dict(data)
    except TypeError as exc:
        raise ModelCardError(f"malformed model card ({exc})", card_path) from exc


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[UnrolledNet, ModelCard]:
    """Rebuild a saved model and load its weights; returns ``(model in eval mode, card)``.

    Refuses (ModelCardError naming the file) a missing/corrupt card or weights file, a card
    whose architecture cannot be built, and any mismatch between the card's architecture and
    the weights (missing or unexpected tensors, different shapes). Never unpickles.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, card_path = model_paths(path)
    card = read_card(path)
    try:
        model = build_model(card.architecture)
    except ConfigError as exc:
        raise ModelCardError(
            f"cannot build the card's architecture: {exc.problem}", card_path
        ) from exc
    if not weights_path.is_file():
        raise ModelCardError("weights file not found", weights_path)
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelCardError(
            f"weights file is not readable safetensors ({exc})", weights_path
        ) from exc
    # Pruning masks (NAME.mask) are read by mriviewer.core.pruning, not loaded into the model.
    tensors = {k: v for k, v in tensors.items() if not k.endswith(".mask")}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(
            f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    for key in sorted(set(expected) & set(found)):
        if expected[key] != found[key]:
            problems.append(
                f"{key} has shape {list(found[key])}, architecture needs {list(expected[key])}"
            )
    if card.tensors:
        listed = {k: tuple(v) for k, v in card.tensors.items()}
        if listed != found:
            problems.append("the card's tensor list does not match the weights file")
    if problems:
        raise ModelCardError(
            f"weights do not match the card's architecture ({card.architecture.get('name')}): "
            + "; ".join(problems[:6]),
            weights_path,
        )
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), card


# -- model zoo -------------------------------------------------------------------------------


def zoo_dir() -> Path:
    """Folder of the bundled models (``resources/models``)."""
    return resource_path("models")


def card_denoiser(architecture: dict[str, Any]) -> str:
    """The data kind of a card's architecture: its ``denoiser`` (``2d`` when absent, as on every
    2-D model's card; ``3d`` or ``2+1d`` for cine models, which reconstruct 2-D + time series)."""
    return str(architecture.get("denoiser") or "2d")


def _card_summary(card: ModelCard) -> dict[str, Any]:
    arch = card.architecture
    denoiser = card_denoiser(arch)
    return {
        "architecture": arch.get("name"),
        "denoiser": denoiser,
        "dynamic": denoiser != "2d",  # a cine model: refused on 2-D slices
        "unrolls": arch.get("num_unrolls"),
        "features": arch.get("features"),
        "strategy": card.strategy.get("name"),
        "modules": card.strategy.get("modules"),
        "accelerations": card.accelerations,
        "loss": card.loss,
        "steps": card.steps,
        "parameters": card.parameters,
        "validation": card.validation,
    }


def list_models() -> list[dict[str, Any]]:
    """Bundled models: ``[{"name", "path", "card": summary}]`` sorted by name; the summary's
    ``denoiser`` (``2d``/``3d``/``2+1d``) and ``dynamic`` say whether it is a cine model.

    A model whose card cannot be read is listed with an ``"error"`` entry instead of a summary.
    """
    root = zoo_dir()
    if not root.is_dir():
        return []
    out = []
    for weights in sorted(root.glob("*.safetensors")):
        entry: dict[str, Any] = {"name": weights.stem, "path": str(weights)}
        try:
            entry["card"] = _card_summary(read_card(weights))
        except ModelCardError as exc:
            entry["error"] = str(exc)
        out.append(entry)
    return out


def resolve_model(name_or_path: str | Path) -> Path:
    """Weights path of a bundled model name (e.g. ``dense``, ``gleam``) or of a saved model path."""
    text = str(name_or_path)
    if text.startswith("model:"):
        text = text[len("model:") :]
    path = Path(text)
    if path.exists():
        weights, _ = model_paths(path)
        return weights
    bundled = zoo_dir() / f"{text}.safetensors"
    if "/" not in text and bundled.is_file():
        return bundled
    names = [m["name"] for m in list_models()]
    known = ", ".join(names) if names else "none are bundled"
    raise ModelCardError(f"no such model file and no bundled model of that name ({known})", text)


def cine_models(methods: list[str]) -> list[str]:
    """The ``model:...`` entries of ``methods`` that are cine models (card denoiser ``3d`` or
    ``2+1d``), read from their cards without loading weights. Raises ModelCardError for a model
    that does not resolve or whose card is unreadable."""
    return [
        m
        for m in methods
        if m.startswith("model:")
        and card_denoiser(read_card(resolve_model(m)).architecture) != "2d"
    ]


def describe_model(target: str | Path) -> dict[str, Any]:
    """What ``mriviewer info model:X`` prints: name, files, architecture, strategy, parameters, card.

    The weights are loaded (and so checked against the card); ``parameters`` is counted from them.
    Add new fields here (e.g. pruning density, FLOPs) as further keys.
    """
    weights = resolve_model(target)
    model, card = load_model(weights)
    text = str(target)
    name = text[len("model:") :] if text.startswith("model:") else text
    _, card_path = model_paths(weights)
    from mriviewer.core.pruning.record import check_masks, describe_pruning, read_weight_masks

    masks = read_weight_masks(weights)
    check_masks(model, masks, weights)
    return {
        "name": name,
        "path": str(weights),
        "card_path": str(card_path),
        "architecture": card.architecture,
        "unrolls": model.num_unrolls,
        "strategy": card.strategy,
        "parameters": model.parameter_count(),
        # density, density_per_layer, params (total/nonzero), flops (dense/pruned), pruning
        **describe_pruning(model, card.to_dict(), masks),
        "card": card.to_dict(),
    }
