"""glibc malloc settings that keep torch's CPU temporaries off the page-fault path.

Every SENSE application, FFT and conv in a reconstruction or training step allocates fresh
multi-megabyte tensors (e.g. 8 coils x 208 x 208 complex64 = 2.7 MiB) and frees them a moment
later. glibc serves such blocks with ``mmap`` (or trims the heap top) and gives them back to the
kernel on ``free``; the next allocation then page-faults and the kernel zeroes every page again.
A MoDL training step (N = 4, 16 features, 208 x 208, 8 coils) took 6,000-19,000 minor page
faults per step this way; with the settings below it takes almost none and 8-10% less CPU
(``mriviewer bench recon``'s training step, issue 14). PyTorch's CPU performance guide gives the
same advice in the form of an alternative allocator (jemalloc / tcmalloc via ``LD_PRELOAD``);
these two ``mallopt`` calls get the same effect without a new dependency:

- ``M_MMAP_THRESHOLD`` = 32 MiB (glibc's maximum on 64-bit): blocks below it come from the heap;
- ``M_TRIM_THRESHOLD`` = 1 GiB: freed heap memory is kept for the next allocation instead of
  being returned to the kernel.

The cost: the process keeps its peak heap (it does not shrink after a big reconstruction).
Setting ``MRIVIEWER_MALLOC=default``, or any of glibc's own ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` variables, leaves malloc as it is. Elsewhere than on glibc (macOS,
Windows, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: environment variable: ``default`` keeps glibc's own malloc behaviour
MALLOC_ENV = "MRIVIEWER_MALLOC"
#: glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied: bool | None = None


def tune_malloc() -> bool:
    """Apply the settings above once per process; True when they are in effect.

    Returns False (and changes nothing) when ``MRIVIEWER_MALLOC=default``, when the user set
    glibc's ``MALLOC_*_THRESHOLD_`` variables, off Linux, or when the C library has no
    ``mallopt`` or refuses a value. Never raises.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(MALLOC_ENV, "").strip().lower() == "default":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    _applied = ok
    return ok


def malloc_description() -> str:
    """One line for benchmark headers: which malloc settings this process runs with."""
    if _applied:
        return (
            "glibc malloc: mmap threshold 32 MiB, trim threshold 1 GiB (mriviewer.core.allocator)"
        )
    return "malloc: the C library's defaults"
