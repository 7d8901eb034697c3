"""Project error classes: every user-facing failure names the file (if any) and the problem."""

from __future__ import annotations

from pathlib import Path


class MriViewerError(Exception):
    """Base class for every error mriviewer reports to a user."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        message = problem if self.path is None else f"{self.path}: {problem}"
        super().__init__(message)


class KSpaceReadError(MriViewerError):
    """A k-space (or image) file could not be read: missing, corrupt, truncated, wrong content."""


class KSpaceWriteError(MriViewerError):
    """Writing an output file failed."""


class MaskError(MriViewerError):
    """A sampling mask is invalid (empty, wrong shape, bad settings)."""


class ReconError(MriViewerError):
    """A reconstruction could not run (bad settings, incompatible shapes, NaN input)."""


class ModelCardError(MriViewerError):
    """A checkpoint / model card is missing, corrupt or does not match the architecture."""


class ConfigError(MriViewerError):
    """A configuration file or command-line setting is invalid."""
