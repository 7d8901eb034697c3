"""Panels of the main window: data, mask, methods, comparison grid, curves, metrics table."""
