"""``mriviewer`` command line. No arguments (or a FILE / --demo) opens the desktop app;
subcommands run the headless core. Each subcommand lives in ``mriviewer.commands.<name>`` and
exposes ``register(subparsers)``, which adds its parser with ``func`` set to its handler.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mriviewer import __version__
from mriviewer.core.errors import MriViewerError

SUBCOMMANDS = (
    "info",
    "convert",
    "recon",
    "eval",
    "simulate",
    "models",
    "methods",
    "train",
    "prune",
    "bench",
    "doctor",
)


def build_parser() -> argparse.ArgumentParser:
    """The full subcommand parser (the app launch is handled before it, in :func:`main`)."""
    parser = argparse.ArgumentParser(
        prog="mriviewer",
        description="Accelerated MRI reconstruction explorer and training core.",
        epilog=(
            "Without a command, mriviewer opens the desktop app: `mriviewer` (demo case), "
            "`mriviewer FILE`, or scripted: `mriviewer --demo --run zero-filled,cg-sense "
            "--screenshot OUT.png --export-figure OUT.pdf --exit` (see `mriviewer --demo --help`)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mriviewer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"mriviewer.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mriviewer.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _is_app_launch(argv: Sequence[str]) -> bool:
    if not argv:
        return True
    first = argv[0]
    if first in SUBCOMMANDS or first in ("-h", "--help", "--version"):
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mriviewer`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if _is_app_launch(argv):
        return gui_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.command in ("recon", "eval"):
            _warn_plugin_failures()
        _pick_threads()
        return int(args.func(args) or 0)
    except MriViewerError as exc:
        print(f"mriviewer: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mriviewer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into a command that stopped reading (e.g. `| head`): not an error.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _pick_threads() -> None:
    """torch threads for a command: the cores that other running processes leave free
    (:func:`mriviewer.core.threads.pick_threads`: one busy neighbour on 2 cores otherwise
    halves every parallel loop); an explicit ``OMP_NUM_THREADS`` is kept, commands with a
    ``--threads`` option set their own afterwards."""
    import os

    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return
    import torch

    from mriviewer.core.threads import pick_threads

    torch.set_num_threads(pick_threads())


def _warn_plugin_failures() -> None:
    """One stderr line per plugin method that was skipped (see ``mriviewer methods``)."""
    from mriviewer.core.compare import plugin_failures

    for record in plugin_failures():
        print(f"mriviewer: warning: {record.describe()}", file=sys.stderr)


def gui_main(argv: Sequence[str] | None = None) -> int:
    """Open the desktop app (needs the ``gui`` extra)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from mriviewer.gui.app import run_app
    except ImportError as exc:
        print(
            "mriviewer: the desktop app needs the 'gui' extra: pip install 'mriviewer[gui]' "
            f"({exc})",
            file=sys.stderr,
        )
        return 1
    return run_app(argv)


if __name__ == "__main__":
    raise SystemExit(main())
