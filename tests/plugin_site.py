"""A folder that makes two plugin packages "installed" without pip or network.

:func:`make_plugin_site` writes the ``*.dist-info`` folders (METADATA + entry_points.txt, what an
install writes) of the example package examples/plugin (its entry points read from its own
pyproject.toml) and of ``mriviewer-test-plugins`` (one working torch-module plugin and four
broken ones), plus that package's module. Put the returned paths on sys.path / PYTHONPATH.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from mriviewer.core.plugins import GROUP

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin"

BROKEN_MODULE = '''
"""Plugins for the tests: one torch module that works, three that break the contract."""
import torch

NOT_CALLABLE = 3


class NoIterate:
    def settings(self):
        return {}


class GradientSteps(torch.nn.Module):
    """Gradient descent on ||A x - y||^2 with step 1 (maps normalised): a torch-module plugin."""

    def __init__(self, steps: int = 8):
        super().__init__()
        self.steps = int(steps)

    def iterate(self, kspace, maps, mask):
        from mriviewer.core.physics.fft import fft2c, ifft2c

        x = (maps.conj() * ifft2c(kspace)).sum(1)
        yield x
        for _ in range(self.steps):
            residual = fft2c(maps * x[:, None]) * mask[:, None] - kspace
            x = x - (maps.conj() * ifft2c(residual)).sum(1)
            yield x
'''

BROKEN_ENTRY_POINTS = {
    "broken-import": "no_such_module_for_mriviewer_tests:Method",
    "no-iterate": "mriviewer_test_plugins:NoIterate",
    "not-callable": "mriviewer_test_plugins:NOT_CALLABLE",
    "cg-sense": "mriviewer_test_plugins:NoIterate",
    "torch-steps": "mriviewer_test_plugins:GradientSteps",
}


def _dist_info(root: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    folder = root / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir()
    (folder / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"{key} = {value}" for key, value in entry_points.items()]
    (folder / "entry_points.txt").write_text(f"[{GROUP}]\n" + "\n".join(lines) + "\n")


def make_plugin_site(root: Path) -> list[str]:
    """Write both packages into ``root``; returns ``[root, examples/plugin]`` for sys.path."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    _dist_info(root, project["name"], project["version"], project["entry-points"][GROUP])
    _dist_info(root, "mriviewer-test-plugins", "0.1", BROKEN_ENTRY_POINTS)
    (root / "mriviewer_test_plugins.py").write_text(textwrap.dedent(BROKEN_MODULE))
    return [str(root), str(EXAMPLE)]
