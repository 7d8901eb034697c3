"""``mriviewer bench NAME ...``: benchmarks that print figures. Each bench lives in
``mriviewer.commands.bench_<name>`` and exposes ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib

BENCHES = ("train", "plan", "generalization", "gui", "recon")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="run a benchmark and print its table")
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCH")
    for name in BENCHES:
        try:
            module = importlib.import_module(f"mriviewer.commands.bench_{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mriviewer.commands.bench_{name}":
                continue
            raise
        module.register(bench_sub)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
