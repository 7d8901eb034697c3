"""mriviewer: explorer and training core for accelerated MRI reconstruction with unrolled networks."""

__version__ = "0.1.0"
