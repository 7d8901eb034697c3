"""A probe reader that dies the way libhdf5 does on some corrupt files (runs in the helper)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from mriviewer.gui.read_probe import read_slice_for_probe


def crash_on_named_files(path: str, index: int | None) -> int:
    if "crash" in Path(path).name:
        os.kill(os.getpid(), signal.SIGSEGV)
    return read_slice_for_probe(path, index)


def crash_on_slice_one(path: str, index: int | None) -> int:
    if index == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    return read_slice_for_probe(path, index)
