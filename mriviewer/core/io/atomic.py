"""Compatibility alias: the atomic writers live in :mod:`mriviewer.core.files`."""

from mriviewer.core.files import atomic_write_bytes, atomic_write_path, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_path", "atomic_write_text"]
