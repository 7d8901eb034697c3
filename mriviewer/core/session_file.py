"""Session files: what the user had open (file, slice, mask, methods, levels, view) as JSON.

Plain data, no Qt, so a session can be inspected or written by scripts. A user-drawn mask is
stored beside the session as ``<session>.mask.npy`` and referenced by name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mriviewer.core.errors import ConfigError
from mriviewer.core.io.atomic import atomic_write_text

SESSION_VERSION = 1


@dataclass
class SessionState:
    """The restorable state of the main window."""

    file: str | None = None
    slice: int = 0
    coil: str = "rss"  # "rss" or a coil index as text
    mask_spec: dict[str, Any] = field(default_factory=dict)
    mask_file: str | None = (
        None  # set when the mask was drawn or loaded (not reproducible from spec)
    )
    methods: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # model files the user opened
    device: str = "cpu"
    levels: list[float] | None = None
    error_levels: list[float] | None = None
    display: str = "magnitude"
    log: bool = False
    error_maps: bool = False
    view_range: list[list[float]] | None = None
    iteration: int | None = None
    roi: dict[str, Any] | None = None
    reference: str = "rss"  # metric convention: rss | sense
    metrics_region: str = "all"  # all | foreground
    version: int = SESSION_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path | None = None) -> SessionState:
        if not isinstance(data, dict):
            raise ConfigError("session file must hold a JSON object", path)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown session keys: {', '.join(unknown)}", path)
        return cls(**data)


def save_session(state: SessionState, path: str | Path) -> Path:
    """Write ``state`` as JSON atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, state.to_json())
    return path


def load_session(path: str | Path) -> SessionState:
    """Read a session JSON; raises ConfigError naming the file on any problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("session file not found", path) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"not a readable session JSON ({exc})", path) from exc
    try:
        return SessionState.from_dict(data, path)
    except TypeError as exc:
        raise ConfigError(f"bad session content ({exc})", path) from exc


def mask_file_for(session_path: str | Path) -> Path:
    """Where a session stores its user-drawn mask."""
    session_path = Path(session_path)
    return session_path.with_name(session_path.stem + ".mask.npy")
