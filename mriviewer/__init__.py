"""mriviewer: explorer and training core for accelerated MRI reconstruction with unrolled networks."""

import os as _os

# OpenMP threads that finish a parallel region sleep instead of spinning. torch's OpenMP runtime
# reads this once, when torch is first imported, so it is set here, before any torch import (the
# CLI, the app and its spawned compute process all import mriviewer first). Spinning threads
# make a reconstruction 3x slower as soon as one other process keeps a core busy (issue 14,
# `mriviewer bench recon --neighbour`). An explicit OMP_WAIT_POLICY is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Keep torch's freed CPU temporaries in the heap instead of handing them back to the kernel and
# page-faulting them in again (mriviewer/core/allocator.py; MRIVIEWER_MALLOC=default opts out).
from mriviewer.core.allocator import tune_malloc as _tune_malloc  # noqa: E402

_tune_malloc()

__version__ = "0.1.0"
