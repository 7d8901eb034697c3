"""The acquired phase-encode band of a k-space file (fastMRI knee zero padding).

fastMRI knee files carry zero-padded phase-encode columns on both sides of the acquired band.
fastMRI's data loader (``fastmri/data/mri_data.py``, ``SliceDataset._retrieve_metadata``) derives
the band from the ISMRMRD header::

    padding_left  = encodedSpace.matrixSize.y // 2 - encodingLimits.kspace_encoding_step_1.center
    padding_right = padding_left + encodingLimits.kspace_encoding_step_1.maximum + 1

so the acquired columns are ``[padding_left, padding_right)`` (``padding_right`` is an index, not
a count). Masks and the acceleration R are defined over that band; the padded columns are never
"sampled".

:func:`acquired_band` looks, in this order, at

1. the file attributes ``padding_left`` / ``padding_right`` (as some converted files store them),
2. the header-derived values above (``kspace_encoding_step_1_center`` / ``_maximum`` header keys
   with the encoded matrix width equal to the k-space width),
3. the data: all-zero edge columns (zero in every coil and row) are outside the band, when the
   band they leave is fully sampled (at least :data:`FULLY_SAMPLED_FRACTION` of its points hold
   data; in undersampled data an unsampled edge line cannot be told from padding).

A declared band that is out of range or whose outside columns hold data is not used; the reason
is recorded in ``AcquiredBand.warnings`` and the next source is tried (never a silent guess).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: fraction of the band's points that must hold data for a detected band (and "fully sampled")
FULLY_SAMPLED_FRACTION = 0.95

SOURCES = {
    "attributes": "padding_left/padding_right attributes",
    "header": "ISMRMRD header encoding limits",
    "detected": "all-zero edge columns",
    "full": "no padding",
}


@dataclass(frozen=True)
class AcquiredBand:
    """Acquired phase-encode columns ``[start, stop)`` of a ``width``-column k-space matrix.

    source: ``attributes`` | ``header`` | ``detected`` | ``full`` (no padding).
    warnings: why a declared band was not used (one line each).
    """

    start: int
    stop: int
    width: int
    source: str = "full"
    warnings: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[int, int]:
        """``(start, stop)``, the band as a half-open column range."""
        return (self.start, self.stop)

    @property
    def size(self) -> int:
        """Number of acquired columns."""
        return self.stop - self.start

    @property
    def is_full(self) -> bool:
        """True when every column is acquired (no padding)."""
        return self.start == 0 and self.stop == self.width

    def describe(self) -> str:
        """One line, e.g. ``columns 8-87 (80 of 96; padding_left/padding_right attributes)``."""
        if self.is_full:
            return f"all {self.width} columns ({SOURCES.get(self.source, self.source)})"
        return (
            f"columns {self.start}-{self.stop - 1} ({self.size} of {self.width}; "
            f"{SOURCES.get(self.source, self.source)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``start``, ``stop`` (exclusive), ``width``, ``source``, ``warnings``."""
        return {
            "start": self.start,
            "stop": self.stop,
            "width": self.width,
            "source": self.source,
            "warnings": list(self.warnings),
        }


def declared_band(header: Mapping[str, Any] | None, width: int) -> tuple[int, int, str] | None:
    """``(start, stop, source)`` declared by a file's header dict (see the module doc), or None.

    ``header`` is ``KSpaceVolume.header``: file attributes under ``attrs``, header-derived
    ``kspace_encoding_step_1_center`` / ``kspace_encoding_step_1_maximum`` and
    ``encoded_matrix`` ``[rows, cols]``. Values are not range-checked here.
    """
    if not header:
        return None
    attrs = header.get("attrs") or {}
    if "padding_left" in attrs and "padding_right" in attrs:
        try:
            return int(attrs["padding_left"]), int(attrs["padding_right"]), "attributes"
        except (TypeError, ValueError):
            return None
    centre = header.get("kspace_encoding_step_1_center")
    maximum = header.get("kspace_encoding_step_1_maximum")
    encoded = header.get("encoded_matrix")
    if centre is None or maximum is None or not encoded or int(encoded[1]) != int(width):
        return None
    left = int(encoded[1]) // 2 - int(centre)
    return left, left + int(maximum) + 1, "header"


def acquired_band(kspace: np.ndarray, header: Mapping[str, Any] | None = None) -> AcquiredBand:
    """The acquired phase-encode band of one ``(C, H, W)`` (or ``(H, W)``) k-space slice.

    ``header``: the volume's header dict (``KSpaceVolume.header``), or None for detection only.
    Sources and rules: see the module docstring. Never raises for a bad declaration: it is
    skipped with a line in ``warnings``.
    """
    k = np.asarray(kspace)
    if k.ndim == 2:
        k = k[None]
    width = int(k.shape[-1])
    held_cols = np.any(k != 0, axis=tuple(range(k.ndim - 1)))
    warnings: list[str] = []
    declared = declared_band(header, width)
    if declared is not None:
        start, stop, source = declared
        what = SOURCES[source]
        if not 0 <= start < stop <= width:
            warnings.append(
                f"{what} give columns [{start}, {stop}), outside the {width} k-space columns: "
                "ignored"
            )
        elif held_cols[:start].any() or held_cols[stop:].any():
            warnings.append(
                f"{what} give columns [{start}, {stop}) but columns outside them hold data: ignored"
            )
        elif start == 0 and stop == width:
            return AcquiredBand(0, width, width, "full", tuple(warnings))
        else:
            return AcquiredBand(start, stop, width, source, tuple(warnings))
    held = np.flatnonzero(held_cols)
    if held.size:
        start, stop = int(held[0]), int(held[-1]) + 1
        if (start, stop) != (0, width):
            inside = np.any(k[..., start:stop] != 0, axis=tuple(range(k.ndim - 2)))
            if inside.mean() >= FULLY_SAMPLED_FRACTION:
                return AcquiredBand(start, stop, width, "detected", tuple(warnings))
    return AcquiredBand(0, width, width, "full", tuple(warnings))
