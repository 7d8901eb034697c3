"""The k-space reader registry: ``READERS`` and :func:`register_reader`, below every reader.

Readers register as ``name -> (sniff(path, head) -> bool, open(path, **options) ->
KSpaceVolume)``; :func:`mriviewer.core.io.detect_format` tries them in registration order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mriviewer.core.io.base import KSpaceVolume

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

Sniffer = Callable[[Path, bytes], bool]
Opener = Callable[..., KSpaceVolume]
READERS: dict[str, tuple[Sniffer, Opener]] = {}


def register_reader(name: str, sniff: Sniffer, opener: Opener) -> None:
    """Add a format reader (later registrations are tried after earlier ones)."""
    READERS[name] = (sniff, opener)


def hdf5_offset(head: bytes) -> int | None:
    """Offset of the HDF5 superblock signature (0, 512, 1024, ... as HDF5 allows) or None."""
    for offset in (0, 512, 1024, 2048):
        if head[offset : offset + 8] == HDF5_SIGNATURE:
            return offset
    return None
