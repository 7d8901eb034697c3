"""Packaging: the built wheel carries resources/ as ``mriviewer.resources`` and works on its own.

The wheel is built from a copy of the source files (the source tree's build/ is never reused),
installed with ``--no-deps`` into a fresh virtual environment outside the source tree, and run
from a temporary working directory. The new environment reaches the already-installed
dependencies (torch, PyQt6, ...) through a ``.pth`` line naming this interpreter's
site-packages, written *after* the install: a plain path line does not run the ``.pth`` hooks
found there, so the editable install of the checkout stays inactive and ``import mriviewer``
must find the wheel's copy.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mriviewer import __version__

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SOURCE_ITEMS = ("mriviewer", "resources", "pyproject.toml", "setup.py", "README.md", "LICENSE")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".*")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 180):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without anything that points Python at the source tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        MPLBACKEND="Agg",
        MRIVIEWER_WORKER="thread",
        MRIVIEWER_CONFIG_DIR=str(home / "config"),
        MRIVIEWER_CACHE=str(home / "cache"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INDEX="1",
    )
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, wheel path, working dir, env): the wheel installed in a fresh venv."""
    root = tmp_path_factory.mktemp("packaging")
    env = _clean_env(root)
    src = root / "src"
    src.mkdir()
    for name in SOURCE_ITEMS:
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=IGNORED)
        elif item.is_file():
            shutil.copy2(item, src / name)
    dist = root / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            dist,
            src,
        ],
        cwd=root,
        env=env,
    )
    (wheel,) = dist.glob("mriviewer-*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root, env=env)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    new_python = bin_dir / Path(sys.executable).name
    _run(
        [sys.executable, "-m", "pip", "--python", new_python, "install", "--no-deps", wheel],
        cwd=root,
        env=env,
    )
    new_site = Path(
        _run(
            [new_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=root,
            env=env,
        ).stdout.strip()
    )
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (new_site / "zz_test_dependencies.pth").write_text("\n".join(deps) + "\n")
    work = root / "work"
    work.mkdir()
    return bin_dir, wheel, work, env


def test_wheel_contains_every_resource_file(installed):
    _, wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    resources = REPO / "resources"
    expected = {
        "mriviewer/resources/" + p.relative_to(resources).as_posix()
        for p in resources.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    }
    assert "mriviewer/resources/demo/demo_brain.h5" in expected
    assert "mriviewer/resources/icons/mriviewer.svg" in expected
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert f"mriviewer-{__version__}.dist-info/METADATA" in names


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    bin_dir, _, work, env = installed
    code = (
        "import mriviewer, mriviewer.resources; "
        "from mriviewer.core.resources import demo_path; "
        "print(mriviewer.__file__); print(demo_path()); print(mriviewer.__version__)"
    )
    out = _run([bin_dir / "python", "-c", code], cwd=work, env=env).stdout.split("\n")
    package, demo, version = Path(out[0]), Path(out[1]), out[2]
    venv = bin_dir.parent
    assert venv in package.parents and REPO not in package.parents
    assert venv in demo.parents and demo.is_file()
    assert version == __version__
    assert _run([bin_dir / "mriviewer", "--version"], cwd=work, env=env).stdout.strip() == (
        f"mriviewer {__version__}"
    )


def test_installed_info_demo(installed):
    bin_dir, _, work, env = installed
    proc = _run([bin_dir / "mriviewer", "info", "demo", "--json"], cwd=work, env=env)
    info = json.loads(proc.stdout)
    assert Path(info["path"]).name == "demo_brain.h5"
    assert bin_dir.parent in Path(info["path"]).parents
    assert (info["slices"], info["coils"], info["matrix"]) == (2, 8, [224, 192])
    assert info["reference"] is True


def test_installed_app_scripted_mode(installed):
    bin_dir, _, work, env = installed
    shot = work / "shot.png"
    cmd = [bin_dir / "mriviewer", "--demo", "--run", "zero-filled", "--size", "1000x720"]
    cmd += ["--screenshot", shot.name, "--exit"]
    proc = _run(cmd, cwd=work, env=env)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "zero-filled" in proc.stdout and "PSNR" in proc.stdout
    from PyQt6.QtGui import QImage

    assert (QImage(str(shot)).width(), QImage(str(shot)).height()) == (1000, 720)
