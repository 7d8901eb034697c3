"""``mriviewer doctor`` (text and --json) and the Qt platform check that runs before the app."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from mriviewer import __version__
from mriviewer.cli import main
from mriviewer.gui import platform_check as pc
from tests.conftest import REPO

LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /x/PyQt6/Qt6/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => /lib/x86_64-linux-gnu/libxcb-icccm.so.4 (0x00007f)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-cursor.so.0 => not found
"""

LDD_OK = """\
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
"""


@pytest.fixture
def fake_plugin(monkeypatch, tmp_path) -> Path:
    plugin = tmp_path / "PyQt6" / "Qt6" / "plugins" / "platforms" / "libqxcb.so"
    plugin.parent.mkdir(parents=True)
    plugin.write_bytes(b"\x7fELF")
    monkeypatch.setattr(pc, "find_platform_plugin", lambda name="xcb": ("PyQt6", plugin))
    monkeypatch.setattr(pc, "x_display_reachable", lambda env: True)  # no X server in tests
    return plugin


def test_doctor_json_keys_and_values(capsys, monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    (cache / "coilmaps").mkdir(parents=True)
    (cache / "coilmaps" / "a.npy").write_bytes(b"x" * 1000)
    monkeypatch.setenv("MRIVIEWER_CACHE", str(cache))
    monkeypatch.setenv("MRIVIEWER_CONFIG_DIR", str(tmp_path / "config"))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {
        "mriviewer",
        "python",
        "os",
        "torch",
        "qt",
        "packages",
        "libraries",
        "folders",
    }
    assert report["mriviewer"]["version"] == __version__
    assert report["python"]["version"] == platform.python_version()
    assert report["python"]["executable"] == sys.executable
    assert report["os"]["system"] == platform.system()
    import h5py
    import numpy
    import torch

    assert report["torch"]["version"] == torch.__version__
    assert report["torch"]["threads"] == torch.get_num_threads()
    assert report["torch"]["cuda_available"] == torch.cuda.is_available()
    assert len([d for d in report["torch"]["devices"] if d["kind"] == "cuda"]) == (
        torch.cuda.device_count() if torch.cuda.is_available() else 0
    )
    assert report["packages"]["numpy"] == numpy.__version__
    assert report["packages"]["h5py"] == h5py.__version__
    assert report["libraries"]["hdf5"] == h5py.version.hdf5_version
    coil = report["folders"]["coil_maps"]
    assert coil == {
        "path": str(cache / "coilmaps"),
        "env": "MRIVIEWER_CACHE",
        "exists": True,
        "files": 1,
        "size_bytes": 1000,
    }
    config = report["folders"]["config"]
    assert config["path"] == str(tmp_path / "config") and config["exists"] is False
    for key in ("binding", "binding_version", "qt_version", "platform", "status", "missing"):
        assert key in report["qt"]


def test_doctor_text_names_versions(capsys, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert lines["mriviewer"].strip() == __version__
    assert lines["python"].strip().startswith(platform.python_version() + " ")
    assert "qt platform" in lines and "offscreen: ok" in lines["qt platform"]
    assert "coil-map cache" in lines and "h5py" in lines
    assert "libhdf5" in lines["h5py"]


def test_doctor_runs_as_a_command():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-m", "mriviewer", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["python"]["version"] == platform.python_version()


def test_parse_ldd_missing():
    assert pc.parse_ldd_missing(LDD_MISSING) == ["libxcb-cursor.so.0", "libxcb-keysyms.so.1"]
    assert pc.parse_ldd_missing(LDD_OK) == []


def test_missing_xcb_library_message_and_exit_status(monkeypatch, fake_plugin, capsys):
    monkeypatch.setattr(pc, "run_ldd", lambda path: LDD_MISSING)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    status = pc.check_platform()
    assert status.status == "missing-libraries" and status.fatal
    assert status.method == "ldd" and status.plugin == str(fake_plugin)
    expected = (
        "mriviewer: error: Qt's xcb platform plugin cannot load: missing system libraries "
        "libxcb-cursor.so.0, libxcb-keysyms.so.1 (pip cannot install them)\n"
        "  Debian/Ubuntu: sudo apt-get install libxcb-cursor0 libxcb-keysyms1\n"
        "  Fedora:        sudo dnf install xcb-util-cursor xcb-util-keysyms\n"
        f"  without a display: {pc.OFFSCREEN_HINT}"
    )
    assert pc.platform_problem() == expected
    # the same through the CLI check `make run` uses, and through the app launch itself
    assert main(["doctor", "--check-gui"]) == 1
    assert capsys.readouterr().err.strip() == expected


LAUNCH = (
    "import sys; import mriviewer.gui.platform_check as pc; "
    "pc.run_ldd = lambda path: sys.argv[1]; "
    "from mriviewer.cli import main; raise SystemExit(main(sys.argv[2:] or ['--demo']))"
)


def _launch(ldd_output: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``mriviewer ARGS`` (default ``--demo``) in a fresh process whose ldd says
    ``ldd_output``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, ldd_output, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **env},
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Linux only")
def test_app_launch_stops_with_the_message_before_qt_aborts():
    pytest.importorskip("PyQt6")
    proc = _launch(LDD_MISSING, DISPLAY=":0")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(
        "mriviewer: error: Qt's xcb platform plugin cannot load: missing system libraries "
        "libxcb-cursor.so.0, libxcb-keysyms.so.1"
    )
    assert "sudo apt-get install libxcb-cursor0 libxcb-keysyms1" in proc.stderr
    assert "Traceback" not in proc.stderr and "qt.qpa" not in proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Linux only")
def test_bench_gui_on_a_display_checks_too():
    pytest.importorskip("PyQt6")
    proc = _launch(LDD_MISSING, "bench", "gui", DISPLAY=":0")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("mriviewer: error: Qt's xcb platform plugin cannot load")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Linux only")
def test_app_launch_without_display_says_so_in_one_line():
    pytest.importorskip("PyQt6")
    proc = _launch(LDD_OK)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("mriviewer: error: no display")
    assert pc.OFFSCREEN_HINT in proc.stderr


def test_wayland_session_stops_only_when_wayland_and_xcb_both_miss_libraries(monkeypatch, tmp_path):
    plugins = {}
    for name in ("xcb", "wayland"):
        plugins[name] = tmp_path / f"libq{name}.so"
        plugins[name].write_bytes(b"\x7fELF")
    monkeypatch.setattr(pc, "find_platform_plugin", lambda name="xcb": ("PyQt6", plugins[name]))
    ldd = {
        "xcb": LDD_MISSING,
        "wayland": "\tlibwayland-cursor.so.0 => not found\n",
    }
    monkeypatch.setattr(pc, "run_ldd", lambda path: ldd[path.stem[4:]])
    both = {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}
    status = pc.check_platform(both, "linux")
    assert status.fatal and status.platform == "wayland;xcb"
    assert status.missing == ["libwayland-cursor.so.0", "libxcb-cursor.so.0", "libxcb-keysyms.so.1"]
    assert pc.describe(status).startswith(
        "mriviewer: error: Qt's wayland and xcb platform plugin cannot load: missing system "
        "libraries libwayland-cursor.so.0, libxcb-cursor.so.0, libxcb-keysyms.so.1"
    )
    # only wayland (no X server to fall back to): its libraries decide
    only = pc.check_platform({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert only.fatal and only.platform == "wayland" and only.missing == ["libwayland-cursor.so.0"]
    # xcb fine: Qt falls back to it
    ldd["xcb"] = LDD_OK
    status = pc.check_platform(both, "linux")
    assert not status.fatal and status.platform == "xcb" and status.status == "ok"
    # wayland fine
    ldd["xcb"], ldd["wayland"] = LDD_MISSING, LDD_OK
    assert pc.check_platform(both, "linux").status == "ok"
    # explicitly xcb: xcb decides
    assert pc.check_platform({**both, "QT_QPA_PLATFORM": "xcb"}, "linux").fatal


def test_libraries_present_pass(monkeypatch, fake_plugin):
    monkeypatch.setattr(pc, "run_ldd", lambda path: LDD_OK)
    status = pc.check_platform({"DISPLAY": ":0"}, "linux")
    assert status.status == "ok" and not status.fatal
    assert pc.platform_problem({"DISPLAY": ":0"}) is None


def test_no_display_one_line(monkeypatch, fake_plugin):
    monkeypatch.setattr(pc, "run_ldd", lambda path: LDD_OK)
    message = pc.platform_problem({})
    assert message is not None and "\n" not in message
    assert message.startswith("mriviewer: error: no display ($DISPLAY and $WAYLAND_DISPLAY")
    assert "QT_QPA_PLATFORM=offscreen mriviewer --demo --run" in message
    assert "--screenshot shot.png --exit" in message
    assert pc.platform_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert pc.platform_problem({"QT_QPA_PLATFORM": "minimal"}) is None
    assert pc.platform_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None


def test_not_linux_is_not_checked(monkeypatch):
    def boom(path):
        raise AssertionError("ldd must not run")

    monkeypatch.setattr(pc, "run_ldd", boom)
    assert pc.check_platform({}, "darwin").status == "not-linux"
    assert pc.check_platform({}, "win32").status == "not-linux"


def test_install_commands_table():
    commands = pc.install_commands(
        ["libxcb-icccm.so.4", "libxkbcommon-x11.so.0", "libxcb-shape.so.0", "libxcb-xinerama.so.0"]
    )
    assert commands == {
        "apt": "sudo apt-get install libxcb-icccm4 libxkbcommon-x11-0 libxcb-shape0 libxcb-xinerama0",
        "dnf": "sudo dnf install xcb-util-wm libxkbcommon-x11 libxcb",
    }
    assert pc.install_commands(["libfoo.so.9"]) == {"unknown": "libfoo.so.9"}


def test_platform_check_imports_no_qt():
    code = (
        "import sys; from mriviewer.gui import platform_check as pc; pc.check_platform(); "
        "from mriviewer.commands import doctor; doctor.collect_report(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('PyQt5', 'PyQt6', 'PySide2', 'PySide6')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_real_plugin_is_found_when_pyqt6_is_installed():
    pytest.importorskip("PyQt6")
    if not sys.platform.startswith("linux"):
        pytest.skip("xcb is Linux only")
    found = pc.find_platform_plugin("xcb")
    assert found is not None and found[0] == "PyQt6"
    assert found[1] is not None and found[1].name == "libqxcb.so" and found[1].is_file()


def test_readme_first_launch_matches_the_check():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = pc.install_commands(list(pc.XCB_SONAMES))
    assert commands["apt"] in readme and commands["dnf"] in readme
    status = pc.PlatformStatus(
        platform="xcb",
        status="missing-libraries",
        missing=["libxcb-icccm.so.4", "libxcb-keysyms.so.1"],
        fatal=True,
    )
    assert pc.describe(status) in readme
    assert "mriviewer doctor --check-gui" in readme


def test_package_version_without_metadata_reads_loaded_modules(monkeypatch):
    """A PyInstaller bundle may lack dist-info: versions come from modules already imported."""
    import types

    from mriviewer.commands import doctor

    def no_metadata(name):
        raise doctor.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(doctor.metadata, "version", no_metadata)
    monkeypatch.setitem(sys.modules, "fakepkg", types.SimpleNamespace(__version__="1.2.3"))
    core = types.SimpleNamespace(PYQT_VERSION_STR="6.9.0", QT_VERSION_STR="6.9.1")
    monkeypatch.setitem(sys.modules, "PyQt6.QtCore", core)
    assert doctor.package_version("fakepkg") == "1.2.3"
    assert doctor.package_version("PyQt6") == "6.9.0"
    assert doctor.package_version("PyQt6-Qt6") == "6.9.1"
    assert doctor.package_version("not-there-at-all") is None


def test_cuda_devices_are_listed_with_memory(monkeypatch):
    """The CUDA branch, faked (CI has no GPU): each device with its name and memory."""
    import types

    import torch

    from mriviewer.commands import doctor

    props = types.SimpleNamespace(name="Fake H200", total_memory=141 * 2**30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    report = doctor.collect_report()
    assert report["torch"]["cuda_available"] is True
    assert report["torch"]["devices"] == [
        {"kind": "cuda", "index": i, "name": "Fake H200", "memory_bytes": 141 * 2**30}
        for i in range(2)
    ]
    text = doctor.format_report(report)
    assert "(CUDA 12.8)" in text
    assert "devices:          cuda:0 Fake H200 (141.0 GiB); cuda:1 Fake H200 (141.0 GiB)" in text


BROKEN_QTGUI = """
import sys
class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == "PyQt6.QtGui":
            raise ImportError("libGL.so.1: cannot open shared object file: No such file or directory")
sys.meta_path.insert(0, Broken())
import mriviewer.gui.platform_check as pc
pc.run_ldd = lambda path: ""
from mriviewer.cli import main
raise SystemExit(main(["--demo"]))
"""


def test_missing_library_of_qtgui_is_named_not_a_traceback():
    pytest.importorskip("PyQt6")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", BROKEN_QTGUI], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        "mriviewer: error: Qt cannot load the system library libGL.so.1: "
        "sudo apt-get install libgl1 (Fedora: sudo dnf install libglvnd-glx)\n"
    )


def test_offscreen_plugin_libraries_are_checked(monkeypatch, fake_plugin):
    monkeypatch.setattr(pc, "run_ldd", lambda path: "\tlibEGL.so.1 => not found\n")
    status = pc.check_platform({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert status.status == "missing-libraries" and status.fatal
    message = pc.describe(status)
    assert "Qt's offscreen platform plugin cannot load: missing system libraries libEGL.so.1" in (
        message
    )
    assert "sudo apt-get install libegl1" in message and "sudo dnf install libglvnd-egl" in message
    assert "without a display" not in message  # offscreen is what that hint would suggest
    # eglfs, vnc, ...: left to Qt
    assert pc.check_platform({"QT_QPA_PLATFORM": "vnc"}, "linux").status == "ok"


def test_unreachable_display_is_one_line_not_a_qt_abort(monkeypatch, fake_plugin):
    monkeypatch.setattr(pc, "run_ldd", lambda path: LDD_OK)
    monkeypatch.setattr(pc, "x_display_reachable", lambda env: False)
    monkeypatch.setenv("DISPLAY", ":97")
    status = pc.check_platform({"DISPLAY": ":97"}, "linux")
    assert status.status == "display-unreachable" and status.fatal
    message = pc.describe(status)
    assert message.startswith("mriviewer: error: cannot connect to the X display ':97'")
    assert "QT_QPA_PLATFORM=offscreen mriviewer --demo" in message


def test_x_display_reachable_asks_the_x_server():
    import ctypes.util

    if ctypes.util.find_library("xcb") is None:
        pytest.skip("libxcb is not installed here")
    # display 97 has no server (no socket): the connection fails, without hanging
    assert pc.x_display_reachable({"DISPLAY": ":97"}) is False
