"""mriviewer: explorer and training core for accelerated MRI reconstruction with unrolled networks."""

import os as _os

# OpenMP threads that finish a parallel region spin briefly, then sleep. torch's OpenMP runtime
# (libgomp) reads these once, when torch is first imported, so they are set here, before any
# torch import (the CLI, the app and its spawned compute process all import mriviewer first).
# Threads that spin for milliseconds (libgomp's default) make a reconstruction 3x slower as soon
# as one other process keeps a core busy; threads that sleep at once (PASSIVE alone) pay a
# wake-up in every one of the thousands of short parallel loops of a training step, which made
# two threads slower than one (issue 14: `mriviewer bench recon --neighbour`, README "Speed").
# An explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "1000"
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Keep torch's freed CPU temporaries in the heap instead of handing them back to the kernel and
# page-faulting them in again (mriviewer/core/allocator.py; MRIVIEWER_MALLOC=default opts out).
from mriviewer.core.allocator import tune_malloc as _tune_malloc  # noqa: E402

_tune_malloc()

__version__ = "0.1.0"
