"""Locate bundled resources (demo case, model zoo, icons) in a wheel or a source checkout."""

from __future__ import annotations

from importlib import resources as importlib_resources
from pathlib import Path

DEMO_NAME = "demo"
DEMO_FILE = "demo/demo_brain.h5"
#: the bundled cine (2-D + time) demo: ``demo-cine`` wherever ``demo`` is accepted
DEMO_CINE_NAME = "demo-cine"
DEMO_CINE_FILE = "demo/demo_cine.h5"


def resources_root() -> Path:
    """Folder holding the bundled resources (installed package data or the checkout's resources/)."""
    try:
        root = importlib_resources.files("mriviewer.resources")
        path = Path(str(root))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(relative: str) -> Path:
    """Absolute path of a bundled resource, e.g. ``resource_path("demo/demo_brain.h5")``."""
    return resources_root() / relative


def demo_path() -> Path:
    """Path of the embedded demo case (fully sampled multi-coil slices with reference)."""
    return resource_path(DEMO_FILE)


def resolve_input(path: str | Path) -> Path:
    """Map the names ``demo`` / ``demo-cine`` to the bundled cases; anything else is returned
    as a Path."""
    if str(path) == DEMO_NAME:
        return demo_path()
    if str(path) == DEMO_CINE_NAME:
        return resource_path(DEMO_CINE_FILE)
    return Path(path)
