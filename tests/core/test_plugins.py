"""Methods from other packages: the entry-point group ``mriviewer.methods``.

No pip and no network: the example package (examples/plugin) and a package of broken plugins
are made importable by writing their ``*.dist-info`` folders (METADATA + entry_points.txt, what
an install writes) into a temporary folder on the path, the example's entry points read from
its own pyproject.toml.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import numpy as np
import pytest
from plugin_site import EXAMPLE, make_plugin_site

from mriviewer.core.compare import evaluate_image, get_method, prepare_problem
from mriviewer.core.errors import ReconError
from mriviewer.core.physics import MaskSpec, make_mask
from mriviewer.core.plugins import GROUP, load_entry_points
from tests.conftest import (
    REPO,  # noqa: E402
    phantom_case,
)

assert (EXAMPLE / "pyproject.toml").is_file()


@pytest.fixture(scope="session")
def plugin_paths(tmp_path_factory) -> list[str]:
    """sys.path entries that make both plugin packages installed (dist-info + modules)."""
    return make_plugin_site(tmp_path_factory.mktemp("site"))


def _env(plugin_paths: list[str], tmp_path: Path) -> dict[str, str]:
    paths = [*plugin_paths, str(REPO), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "QT_QPA_PLATFORM": "offscreen",
        "MRIVIEWER_CONFIG_DIR": str(tmp_path),
    }


@pytest.fixture
def loaded(plugin_paths, monkeypatch):
    """Load the two packages' entry points into a private registry (compare's is untouched)."""
    from mriviewer.core import compare

    compare.load_plugins()  # before the path changes: the session's registry never sees them
    for path in plugin_paths:
        monkeypatch.syspath_prepend(path)
    eps = [
        ep
        for dist in distributions(path=plugin_paths[:1])
        for ep in dist.entry_points
        if ep.group == GROUP
    ]
    registry: dict = {}
    records = load_entry_points(registry.__setitem__, reserved={"cg-sense"}, eps=eps)
    return registry, {r.name: r for r in records}


def test_loader_registers_good_plugins_and_reports_broken_ones(loaded):
    registry, records = loaded
    assert set(registry) == {"pocs-sense", "torch-steps"}
    assert records["pocs-sense"].kind == "method class" and not records["pocs-sense"].error
    assert records["pocs-sense"].package == "mriviewer-pocs"
    assert records["torch-steps"].kind == "torch module"
    assert records["broken-import"].error.startswith("import failed: ModuleNotFoundError")
    assert "has no iterate method" in records["no-iterate"].error
    assert "int object is not callable" in records["not-callable"].error
    assert records["cg-sense"].error == "the name is already taken by another method"
    line = records["no-iterate"].describe()
    assert line.startswith("plugin method 'no-iterate' (package mriviewer-test-plugins) skipped")


@pytest.fixture(scope="module")
def problem():
    kspace, _, _ = phantom_case(64, 64, coils=8, seed=0)
    return prepare_problem(kspace, make_mask(MaskSpec("random", 4.0, 0.08, seed=0), (64, 64)))


@pytest.mark.parametrize(
    ("name", "settings"), [("pocs-sense", {"max_iter": 20}), ("torch-steps", {})]
)
def test_plugin_methods_stream_and_beat_zero_filled(loaded, problem, name, settings):
    registry, _ = loaded
    method = registry[name](**settings)
    method.name = name
    results = list(method.iterate(problem))
    assert [r.iteration for r in results] == list(range(len(results)))
    assert [r.final for r in results] == [False] * (len(results) - 1) + [True]
    assert all(r.image.shape == (64, 64) and r.image.dtype == np.complex64 for r in results)
    zero = list(get_method("zero-filled").iterate(problem))[-1].image
    assert evaluate_image(problem, results[-1].image)["psnr"] > (
        evaluate_image(problem, zero)["psnr"] + 1.0
    )
    assert method.settings() == ({"max_iter": 20} if name == "pocs-sense" else {})


def test_plugin_settings_are_checked(loaded):
    registry, _ = loaded
    with pytest.raises(ReconError, match="max_iter=0 must be >= 1"):
        registry["pocs-sense"](max_iter=0)
    with pytest.raises(
        ReconError,
        match=r"plugin method 'pocs-sense' \(package mriviewer-pocs\) could not be built with "
        r"settings \{'lamda': 1\}: TypeError: .*unexpected keyword argument 'lamda'",
    ):
        registry["pocs-sense"](lamda=1)


def test_methods_command_and_eval_with_plugins(plugin_paths, tmp_path):
    env = _env(plugin_paths, tmp_path)
    listed = subprocess.run(
        [sys.executable, "-m", "mriviewer", "methods", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    out = json.loads(listed.stdout)
    methods = {m["name"]: m for m in out["methods"]}
    assert methods["pocs-sense"] == {
        "name": "pocs-sense",
        "source": "mriviewer-pocs",
        "kind": "method class",
        "settings": {"max_iter": 30},
    }
    assert methods["torch-steps"]["kind"] == "torch module"
    assert methods["grappa"]["source"] == "mriviewer"
    failed = {f["name"]: f for f in out["failures"]}
    assert set(failed) == {"broken-import", "no-iterate", "not-callable", "cg-sense"}
    assert failed["broken-import"]["package"] == "mriviewer-test-plugins"

    result = tmp_path / "eval.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mriviewer",
            "eval",
            "demo",
            "--methods",
            "zero-filled,pocs-sense",
            "--method-option",
            "pocs-sense.max_iter=15",
            "--mask",
            "random",
            "--accel",
            "4",
            "--json",
            str(result),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert len(warnings) == 4 and "plugin method 'broken-import'" in proc.stderr
    demo = json.loads(result.read_text())["cases"]["demo"]
    assert demo["pocs-sense"]["psnr"] > demo["zero-filled"]["psnr"] + 2.0

    unknown = subprocess.run(
        [sys.executable, "-m", "mriviewer", "eval", "demo", "--methods", "no-iterate"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert unknown.returncode == 1
    assert "error: plugin method 'no-iterate' (package mriviewer-test-plugins) skipped: " in (
        unknown.stderr
    )


def test_methods_table_lists_builtin_methods(capsys):
    from mriviewer.cli import main

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "source", "kind", "settings"]
    grappa = next(line for line in lines if line.startswith("grappa "))
    assert grappa.split()[1:3] == ["mriviewer", "built-in"] and '"kernel_size": "auto"' in grappa
    assert lines[-1].startswith("model:NAME | model:PATH")
