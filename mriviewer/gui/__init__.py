"""The desktop app (PyQt6 + pyqtgraph). Everything heavy runs in :mod:`mriviewer.core`."""
