"""``mriviewer doctor``: one report of what a bug report needs (``--json`` too); ``--check-gui``
only checks that Qt can open a window here (``make run`` runs it first).

The same text is shown by the app's Help > System report… dialog. Qt is never imported: the
binding's and Qt's versions come from the installed distributions, the platform plugin status
from :mod:`mriviewer.gui.platform_check`.

JSON keys (stable): ``mriviewer`` {version}, ``python`` {version, implementation, executable},
``os`` {system, release, machine, platform, distribution, cpu_count}, ``torch`` {version,
cuda_available, cuda_version, devices [{kind, index, name, memory_bytes}], mps_available,
threads, interop_threads, error}, ``qt`` {binding, binding_version, qt_version, platform,
status, plugin, method, missing, fatal, install}, ``packages`` {numpy, scipy, torch, sigpy,
h5py, twixtools, pyqtgraph, PyQt6, PySide6, safetensors, matplotlib: version or null},
``libraries`` {hdf5}, ``folders`` {coil_maps, config: {path, env, exists, files, size_bytes}}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from mriviewer import __version__

PACKAGES: tuple[str, ...] = (
    "numpy",
    "scipy",
    "torch",
    "sigpy",
    "h5py",
    "twixtools",
    "pyqtgraph",
    "PyQt6",
    "PySide6",
    "safetensors",
    "matplotlib",
)

#: Qt binding distribution -> the distribution whose version is the bundled Qt's
QT_DISTRIBUTIONS: dict[str, str] = {"PyQt6": "PyQt6-Qt6", "PySide6": "PySide6-Essentials"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="system report for bug reports (versions, devices, Qt platform, cache folders)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--check-gui",
        action="store_true",
        help="only check that the desktop app can open a window here (exit status 1 if not)",
    )
    parser.set_defaults(func=run)


def package_version(name: str) -> str | None:
    """Installed version of the distribution ``name``, or None when it is not installed.

    Without the distribution's metadata (e.g. in a PyInstaller bundle) an already imported
    module's ``__version__`` (PyQt6: ``PYQT_VERSION_STR``) is used; nothing is imported here."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    if name == "PyQt6":
        return getattr(sys.modules.get("PyQt6.QtCore"), "PYQT_VERSION_STR", None)
    if name == "PyQt6-Qt6":
        return getattr(sys.modules.get("PyQt6.QtCore"), "QT_VERSION_STR", None)
    version = getattr(sys.modules.get(name), "__version__", None)
    return str(version) if version is not None else None


def _distribution() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except (OSError, AttributeError):
        if sys.platform == "darwin":
            return f"macOS {platform.mac_ver()[0]}"
        return None


def _torch_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "version": None,
        "cuda_available": False,
        "cuda_version": None,
        "devices": [],
        "mps_available": False,
        "threads": None,
        "interop_threads": None,
        "error": None,
    }
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - the report says what went wrong
        info["error"] = f"{type(exc).__name__}: {exc}"
        return info
    info["version"] = torch.__version__
    info["cuda_version"] = torch.version.cuda
    info["threads"] = torch.get_num_threads()
    info["interop_threads"] = torch.get_num_interop_threads()
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        for i in range(torch.cuda.device_count() if info["cuda_available"] else 0):
            props = torch.cuda.get_device_properties(i)
            info["devices"].append(
                {
                    "kind": "cuda",
                    "index": i,
                    "name": props.name,
                    "memory_bytes": int(props.total_memory),
                }
            )
        mps = getattr(torch.backends, "mps", None)
        info["mps_available"] = bool(mps is not None and mps.is_available())
        if info["mps_available"]:
            memory = None
            if hasattr(torch, "mps") and hasattr(torch.mps, "recommended_max_memory"):
                memory = int(torch.mps.recommended_max_memory())
            info["devices"].append(
                {"kind": "mps", "index": 0, "name": "Apple MPS", "memory_bytes": memory}
            )
    except Exception as exc:  # noqa: BLE001
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def _qt_info() -> dict[str, Any]:
    from mriviewer.gui.platform_check import check_platform

    binding = next((name for name in QT_DISTRIBUTIONS if package_version(name) is not None), None)
    try:
        status = check_platform().as_dict()
    except Exception as exc:  # noqa: BLE001
        status = {"platform": None, "status": f"check failed: {exc}", "missing": []}
    binding = status.pop("binding", None) or binding
    return {
        "binding": binding,
        "binding_version": package_version(binding) if binding else None,
        "qt_version": package_version(QT_DISTRIBUTIONS.get(binding, "")) if binding else None,
        **status,
    }


def _hdf5_version() -> str | None:
    try:
        import h5py
    except Exception:  # noqa: BLE001
        return None
    return str(h5py.version.hdf5_version)


def folder_info(path: Path, env: str | None = None) -> dict[str, Any]:
    """``{path, env, exists, files, size_bytes}`` of a folder (sizes of the files below it);
    ``env`` names the environment variable that set it, when one did."""
    files = 0
    size = 0
    if path.is_dir():
        for root, _dirs, names in os.walk(path):
            for name in names:
                try:
                    size += (Path(root) / name).stat().st_size
                    files += 1
                except OSError:
                    pass
    return {
        "path": str(path),
        "env": env,
        "exists": path.is_dir(),
        "files": files,
        "size_bytes": size,
    }


def config_dir() -> tuple[Path, str | None]:
    """The app's settings folder and the variable that chose it: ``MRIVIEWER_CONFIG_DIR``, else
    where QSettings keeps ``mriviewer/mriviewer.conf`` (``$XDG_CONFIG_HOME`` or ``~/.config``;
    on macOS ``~/Library/Preferences``)."""
    if os.environ.get("MRIVIEWER_CONFIG_DIR"):
        return Path(os.environ["MRIVIEWER_CONFIG_DIR"]), "MRIVIEWER_CONFIG_DIR"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Preferences", None
    if os.environ.get("XDG_CONFIG_HOME"):
        return Path(os.environ["XDG_CONFIG_HOME"]) / "mriviewer", "XDG_CONFIG_HOME"
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        return (Path(appdata) / "mriviewer" if appdata else Path.home()), None
    return Path.home() / ".config" / "mriviewer", None


def collect_report() -> dict[str, Any]:
    """The system report as a JSON-ready dict (keys in the module docstring)."""
    from mriviewer.core.physics.coils import cache_dir

    cfg, cfg_env = config_dir()
    return {
        "mriviewer": {"version": __version__},
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
            "distribution": _distribution(),
            "cpu_count": os.cpu_count(),
        },
        "torch": _torch_info(),
        "qt": _qt_info(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "libraries": {"hdf5": _hdf5_version()},
        "folders": {
            "coil_maps": folder_info(
                cache_dir(), "MRIVIEWER_CACHE" if os.environ.get("MRIVIEWER_CACHE") else None
            ),
            "config": folder_info(cfg, cfg_env),
        },
    }


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def format_report(report: dict[str, Any]) -> str:
    """The report as text, one ``key: value`` line per item (what ``mriviewer doctor`` prints)."""
    t, q, o = report["torch"], report["qt"], report["os"]
    lines = [
        f"mriviewer:        {report['mriviewer']['version']}",
        f"python:           {report['python']['version']} ({report['python']['implementation']}, "
        f"{report['python']['executable']})",
        f"os:               {o['distribution'] or o['system']} ({o['platform']}), "
        f"{o['cpu_count']} CPU(s)",
    ]
    if t["version"] is None:
        lines.append(f"torch:            not importable ({t['error']})")
    else:
        cuda = f"CUDA {t['cuda_version']}" if t["cuda_version"] else "CPU build"
        lines.append(
            f"torch:            {t['version']} ({cuda}), {t['threads']} thread(s), "
            f"{t['interop_threads']} interop"
        )
        devices = [
            f"{d['kind']}:{d['index']} {d['name']} ({_size(d['memory_bytes'])})"
            for d in t["devices"]
        ]
        lines.append(f"devices:          {'; '.join(devices) or 'cpu only'}")
        if t["error"]:
            lines.append(f"torch error:      {t['error']}")
    if q["binding"]:
        lines.append(
            f"qt:               {q['binding']} {q['binding_version']}, Qt {q['qt_version']}"
        )
    else:
        lines.append("qt:               no Qt binding installed (pip install 'mriviewer[gui]')")
    platform_line = f"{q.get('platform')}: {q.get('status')}"
    if q.get("missing"):
        platform_line += f", missing {', '.join(q['missing'])}"
    lines.append(f"qt platform:      {platform_line}")
    for key, label in (("apt", "  install (apt):"), ("dnf", "  install (dnf):")):
        if q.get("install", {}).get(key):
            lines.append(f"{label:<18}{q['install'][key]}")
    for name, version in report["packages"].items():
        if name in ("torch", "PyQt6", "PySide6"):
            continue
        extra = ""
        if name == "h5py" and version:
            extra = f" (libhdf5 {report['libraries']['hdf5']})"
        lines.append(f"{name + ':':<18}{version or 'not installed'}{extra}")
    for key, label in (("coil_maps", "coil-map cache:"), ("config", "config folder:")):
        f = report["folders"][key]
        where = f"{f['path']}" + (f" (${f['env']})" if f["env"] else "")
        state = f"{f['files']} file(s), {_size(f['size_bytes'])}" if f["exists"] else "absent"
        lines.append(f"{label:<18}{where}: {state}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.check_gui:
        from mriviewer.gui.platform_check import platform_problem

        problem = platform_problem()
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    report = collect_report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0
