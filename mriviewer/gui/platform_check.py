"""Can Qt open a window here? Checked before the ``QApplication`` exists, without importing Qt.

On Linux, Qt's xcb platform plugin (``plugins/platforms/libqxcb.so`` inside the PyQt6 /
PySide6 wheel) links against X11/xcb system libraries that pip cannot install
(``libxcb-cursor0``, ``libxcb-icccm4``, ``libxcb-keysyms1``, ...). Without them Qt aborts with
its own "could not load the Qt platform plugin" message. :func:`check_platform` finds the plugin
through :func:`importlib.util.find_spec` (no Qt module is imported), runs ``ldd`` on it (its
"not found" lines; ``ctypes`` on the usual libraries when there is no ``ldd``) and maps the
missing sonames to Debian/Ubuntu and Fedora packages; :func:`platform_problem` turns that into
the message the app prints before it exits with status 1. The wayland, offscreen and minimal
plugins are checked the same way (they need libGL, libEGL, fontconfig, ... through libQt6Gui).
With no display at all it says so in one line and points to the scripted offscreen mode.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: soname -> (Debian/Ubuntu package, Fedora package)
SONAME_PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libpng16.so.16": ("libpng16-16", "libpng"),
    "libexpat.so.1": ("libexpat1", "expat"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
}

#: what the Qt 6 xcb plugin links beyond a base system: the README's first-launch list and the
#: libraries tried with ctypes when ``ldd`` is not available.
XCB_SONAMES: tuple[str, ...] = (
    "libxcb-cursor.so.0",
    "libxcb-icccm.so.4",
    "libxcb-keysyms.so.1",
    "libxcb-image.so.0",
    "libxcb-render-util.so.0",
    "libxcb-shape.so.0",
    "libxcb-xinerama.so.0",
    "libxkbcommon-x11.so.0",
)

#: what every Qt 6 platform plugin (offscreen and minimal too) needs through libQt6Gui: tried
#: with ctypes when there is no ``ldd``.
GUI_SONAMES: tuple[str, ...] = (
    "libGL.so.1",
    "libEGL.so.1",
    "libfontconfig.so.1",
    "libfreetype.so.6",
    "libxkbcommon.so.0",
    "libglib-2.0.so.0",
    "libX11.so.6",
)

#: platforms whose plugin is checked, and its file names (newest Qt first)
PLUGIN_FILES: dict[str, tuple[str, ...]] = {
    "xcb": ("libqxcb.so",),
    "wayland": ("libqwayland.so", "libqwayland-generic.so"),
    "offscreen": ("libqoffscreen.so",),
    "minimal": ("libqminimal.so",),
}

#: Qt bindings in the order the app tries them, with the plugin folder inside the package.
BINDINGS: tuple[tuple[str, str], ...] = (
    ("PyQt6", "Qt6/plugins/platforms"),
    ("PySide6", "Qt/plugins/platforms"),
)

OFFSCREEN_HINT = (
    "QT_QPA_PLATFORM=offscreen mriviewer --demo --run zero-filled,cg-sense "
    "--screenshot shot.png --exit"
)

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


@dataclass
class PlatformStatus:
    """What :func:`check_platform` found.

    ``status`` is one of ``ok`` (the plugin's libraries load, or nothing needs checking),
    ``missing-libraries``, ``no-display``, ``not-linux`` (nothing to check), ``plugin-not-found``
    (no Qt binding, or no such plugin file in it) or ``unchecked`` (neither ``ldd`` nor ``ctypes``
    could tell). Only ``missing-libraries`` and ``no-display`` stop the app (see ``fatal``).
    """

    platform: str
    status: str
    binding: str | None = None
    plugin: str | None = None
    method: str | None = None
    missing: list[str] = field(default_factory=list)
    fatal: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the ``qt`` part of ``mriviewer doctor --json``)."""
        data = asdict(self)
        data["install"] = install_commands(self.missing) if self.missing else {}
        return data


def requested_platform(env: Mapping[str, str] | None = None) -> str:
    """The platform named by ``QT_QPA_PLATFORM`` (first of a ``;`` list, options after ``:``
    dropped), or ``""`` when unset."""
    env = os.environ if env is None else env
    value = (env.get("QT_QPA_PLATFORM") or "").strip()
    return value.split(";")[0].split(":")[0].strip().lower()


def find_platform_plugin(name: str = "xcb") -> tuple[str, Path | None] | None:
    """``(binding, path)`` of platform ``name``'s plugin (``libq<name>.so``, see
    :data:`PLUGIN_FILES`) in the first installed Qt binding, found through
    the package's location only (no Qt module is imported); path is None when the binding has
    no such file (e.g. a distribution's PyQt6 using the system Qt); None without a binding."""
    first: tuple[str, Path | None] | None = None
    for binding, sub in BINDINGS:
        try:
            spec = importlib.util.find_spec(binding)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        roots = list(spec.submodule_search_locations or [])
        if not roots and spec.origin:
            roots = [str(Path(spec.origin).parent)]
        for root in roots:
            for filename in PLUGIN_FILES.get(name, (f"libq{name}.so",)):
                plugin = Path(root) / sub / filename
                if plugin.is_file():
                    return binding, plugin
        first = first or (binding, None)
    return first


def run_ldd(path: Path) -> str | None:
    """``ldd PATH``'s output (stdout and stderr), or None when there is no ``ldd``."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        proc = subprocess.run(
            [ldd, str(path)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout + proc.stderr


def parse_ldd_missing(output: str) -> list[str]:
    """The sonames of ``ldd``'s ``NAME => not found`` lines, in order, without repeats."""
    missing: list[str] = []
    for line in output.splitlines():
        match = _NOT_FOUND.match(line)
        if match and match.group(1) not in missing:
            missing.append(match.group(1))
    return missing


def ctypes_missing(sonames: tuple[str, ...] = XCB_SONAMES) -> list[str]:
    """The sonames that ``ctypes.CDLL`` cannot load (the fallback when there is no ``ldd``)."""
    missing = []
    for soname in sonames:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    return missing


def missing_libraries(
    plugin: Path, fallback: tuple[str, ...] = XCB_SONAMES + GUI_SONAMES
) -> tuple[list[str], str | None]:
    """``(missing sonames, method)`` for the plugin; method is ``ldd``, ``ctypes`` (the
    ``fallback`` sonames tried when there is no ``ldd``) or None (could not tell)."""
    output = run_ldd(plugin)
    if output is not None and "=>" in output:
        return parse_ldd_missing(output), "ldd"
    try:
        return ctypes_missing(fallback), "ctypes"
    except Exception:  # noqa: BLE001 - a check must never crash the launch
        return [], None


def install_commands(missing: list[str]) -> dict[str, str]:
    """``{"apt": "sudo apt-get install ...", "dnf": "sudo dnf install ..."}`` for the missing
    sonames; a soname outside :data:`SONAME_PACKAGES` adds ``"unknown": "..."``."""
    apt: list[str] = []
    dnf: list[str] = []
    unknown: list[str] = []
    for soname in missing:
        packages = SONAME_PACKAGES.get(soname)
        if packages is None:
            unknown.append(soname)
            continue
        if packages[0] not in apt:
            apt.append(packages[0])
        if packages[1] not in dnf:
            dnf.append(packages[1])
    out: dict[str, str] = {}
    if apt:
        out["apt"] = "sudo apt-get install " + " ".join(apt)
        out["dnf"] = "sudo dnf install " + " ".join(dnf)
    if unknown:
        out["unknown"] = " ".join(unknown)
    return out


def plugin_status(platform: str) -> PlatformStatus:
    """The libraries of one platform plugin (no display check); ``fatal`` when any is missing."""
    found = find_platform_plugin(platform)
    if found is None or found[1] is None:
        return PlatformStatus(
            platform=platform, status="plugin-not-found", binding=found[0] if found else None
        )
    binding, plugin = found[0], found[1]
    fallback = (XCB_SONAMES if platform == "xcb" else ()) + GUI_SONAMES
    missing, method = missing_libraries(plugin, fallback)
    return PlatformStatus(
        platform=platform,
        status="missing-libraries" if missing else ("ok" if method else "unchecked"),
        binding=binding,
        plugin=str(plugin),
        method=method,
        missing=missing,
        fatal=bool(missing),
    )


def check_platform(
    env: Mapping[str, str] | None = None, system: str | None = None
) -> PlatformStatus:
    """Check the platform Qt will use before any ``QApplication`` exists: ``QT_QPA_PLATFORM``;
    unset, Qt tries wayland then xcb when ``$WAYLAND_DISPLAY`` is set (stopping only when both
    plugins miss libraries), else xcb. The xcb, wayland, offscreen and minimal plugins'
    libraries are checked (other platforms are left to Qt); xcb and wayland need a display."""
    env = os.environ if env is None else env
    system = sys.platform if system is None else system
    requested = requested_platform(env)
    if not system.startswith("linux"):
        return PlatformStatus(platform=requested or "native", status="not-linux")
    has_x = bool(env.get("DISPLAY"))
    has_wayland = bool(env.get("WAYLAND_DISPLAY"))
    platform = requested or ("wayland" if has_wayland else "xcb")
    if platform not in PLUGIN_FILES:  # eglfs, vnc, linuxfb, ...: Qt's own checks apply
        return PlatformStatus(platform=platform, status="ok")
    status = plugin_status(platform)
    if not requested and has_wayland and has_x and status.missing:
        fallback = plugin_status("xcb")  # Qt falls back to xcb when wayland fails
        if not fallback.missing:
            return fallback
        status.platform = "wayland;xcb"
        status.missing += [m for m in fallback.missing if m not in status.missing]
    needs_display = platform in ("xcb", "wayland")
    if needs_display and not has_x and not has_wayland and not status.missing:
        status.status = "no-display"
        status.fatal = True
    elif platform == "xcb" and has_x and not status.missing and not x_display_reachable(env):
        # a stale $DISPLAY (an ssh session without X forwarding, a stopped Xvfb): Qt would
        # abort with "could not load the Qt platform plugin"
        status.status = "display-unreachable"
        status.fatal = True
    return status


def x_display_reachable(env: Mapping[str, str]) -> bool:
    """Whether the X server of ``$DISPLAY`` accepts a connection (libxcb's ``xcb_connect``,
    the call Qt's xcb plugin makes). True when libxcb cannot be loaded: then Qt's own error
    applies."""
    import ctypes

    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return True
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(str(env.get("DISPLAY", "")).encode(), None)
    try:
        return conn is not None and xcb.xcb_connection_has_error(conn) == 0
    finally:
        if conn:
            xcb.xcb_disconnect(conn)


def describe(status: PlatformStatus) -> str:
    """The message for a status that stops the app; ``""`` when there is nothing to say."""
    if status.status == "missing-libraries":
        commands = install_commands(status.missing)
        lines = [
            f"mriviewer: error: Qt's {status.platform.replace(';', ' and ')} platform plugin "
            "cannot load: missing "
            f"system libraries {', '.join(status.missing)} (pip cannot install them)",
        ]
        if "apt" in commands:
            lines.append(f"  Debian/Ubuntu: {commands['apt']}")
            lines.append(f"  Fedora:        {commands['dnf']}")
        if "unknown" in commands:
            lines.append(
                f"  no known package for {commands['unknown']}: "
                "apt-file search NAME / dnf provides '*/NAME'"
            )
        if status.platform != "offscreen":
            lines.append(f"  without a display: {OFFSCREEN_HINT}")
        return "\n".join(lines)
    if status.status == "display-unreachable":
        return (
            f"mriviewer: error: cannot connect to the X display {os.environ.get('DISPLAY', '')!r}"
            " (is the X server running, or X forwarding on for ssh?); for a headless run use the "
            f"scripted offscreen mode: {OFFSCREEN_HINT}"
        )
    if status.status == "no-display":
        return (
            "mriviewer: error: no display ($DISPLAY and $WAYLAND_DISPLAY are unset); "
            f"for a headless run use the scripted offscreen mode: {OFFSCREEN_HINT}"
        )
    return ""


_SHARED_OBJECT = re.compile(r"(\S+\.so(?:\.[\w.]+)?): cannot open shared object file")


def import_error_message(exc: BaseException, binding: str = "PyQt6") -> str:
    """One line for a failed import of the Qt binding: the missing system library with its
    apt/dnf line when the loader named one, else the ``gui`` extra to install."""
    match = _SHARED_OBJECT.search(str(exc))
    if match is None:
        return (
            f"mriviewer: error: the desktop app needs {binding}: pip install 'mriviewer[gui]' "
            f"({exc})"
        )
    soname = match.group(1)
    commands = install_commands([soname])
    if "apt" in commands:
        how = f"{commands['apt']} (Fedora: {commands['dnf']})"
    else:
        how = f"find its package: apt-file search {soname} / dnf provides '*/{soname}'"
    return f"mriviewer: error: Qt cannot load the system library {soname}: {how}"


def platform_problem(env: Mapping[str, str] | None = None) -> str | None:
    """The message to print (then exit with status 1) when Qt cannot open a window here, else
    None (also when the check itself fails: it must never block a launch)."""
    try:
        status = check_platform(env)
    except Exception:  # noqa: BLE001
        return None
    return describe(status) if status.fatal else None
