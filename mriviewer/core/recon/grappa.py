"""GRAPPA (Griswold et al., MRM 47:1202, 2002) on Cartesian masks, through pygrappa.

The k-space interpolation is pygrappa's :func:`pygrappa.mdgrappa` (N-D GRAPPA: one Tikhonov-
regularised kernel per distinct sampling pattern of the kernel window, trained on the
calibration block): it handles 1-D line masks (random, equispaced) and 2-D masks (Poisson disc,
Gaussian) alike. Of pygrappa's variants it was the fastest correct one on the demo
(``cgrappa``, the Cython one, needs complex128, mis-sizes its output for non-square kernels and
was slower at 5 x 5; ``grappa`` gives the same image as ``mdgrappa`` more slowly): see the
README section "GRAPPA". Its kernel fit (one ``S^H S`` product per pattern, 90% of its time)
is replaced by :func:`train_weights`, the same fit from one Gram matrix, passed to ``mdgrappa``
as ``weights`` (same kernels to 1e-13; 6x faster on the demo's line mask, 100x on a Poisson one).

The calibration block (ACS) is the largest fully sampled rectangle centred on ``(H // 2,
W // 2)`` of ``problem.mask``; the filled coil k-spaces are combined by root-sum-of-squares
(``combine="rss"``, no coil maps needed) or with the problem's coil maps (``"sense"``:
``sum_c conj(S_c) x_c``, the same combination as the SENSE zero-filled image).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from mriviewer.core.errors import ReconError
from mriviewer.core.physics.fft import ifft2c_np
from mriviewer.core.recon.base import IterationResult, ReconProblem
from mriviewer.core.recon.cg_sense import as_number, check_settings

#: kernels (rows along H, columns along W) of ``kernel_size="auto"`` and the Tikhonov weight,
#: tuned on the demo (Colin27, 8 coils, R=4: random seeds 0-1 and equispaced, cf 0.08; Poisson
#: calib 24): 3 x 5 across sampled lines (5 along the phase encode), 3 x 3 for 2-D masks (a 2-D
#: pattern has thousands of distinct 3 x 5 windows, one kernel fit each: slower and worse there)
LINE_KERNEL = (3, 5)
MASK_2D_KERNEL = (3, 3)
DEFAULT_LAMDA = 0.1
COMBINES = ("rss", "sense")


def parse_kernel(value: Any) -> tuple[int, int] | None:
    """Kernel size from ``5`` (square), ``"3x5"`` / ``"3,5"`` or ``[3, 5]`` -> ``(rows, cols)``;
    ``"auto"`` -> None (chosen from the mask: :func:`auto_kernel`).

    Rows run along H (read-out for a 1-D mask), columns along W (phase encode). Each entry
    must be an integer >= 2 (a kernel needs neighbours along both axes); raises
    :class:`ReconError` otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str):
        text = value.lower().strip().strip("[]()")  # "[3, 5]" from the command line too
        parts = text.replace(",", "x").replace(" ", "").split("x")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value, value]
    if len(parts) != 2:
        raise ReconError(f"grappa: kernel_size={value!r} must be N, 'RxC' or [R, C]")
    try:
        size = tuple(int(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise ReconError(f"grappa: kernel_size={value!r} is not a pair of integers") from exc
    if min(size) < 2:  # pygrappa needs neighbours along both axes to fit from
        raise ReconError(f"grappa: kernel_size={value!r} entries must be >= 2")
    return size  # type: ignore[return-value]


def auto_kernel(mask: np.ndarray) -> tuple[int, int]:
    """The ``"auto"`` kernel for an ``(H, W)`` mask: :data:`LINE_KERNEL` for lines along H
    (every row the same), transposed for lines along W, else :data:`MASK_2D_KERNEL`."""
    mask = np.asarray(mask, dtype=bool)
    if (mask == mask[:1]).all():
        return LINE_KERNEL
    if (mask == mask[:, :1]).all():
        return LINE_KERNEL[::-1]
    return MASK_2D_KERNEL


def calibration_block(mask: np.ndarray, kernel: tuple[int, int] = (1, 1)) -> tuple[slice, slice]:
    """Largest fully sampled rectangle of an ``(H, W)`` bool mask around ``(H//2, W//2)``.

    Of the candidate blocks (one per row band grown from the centre) the largest in area that
    is at least ``kernel`` (rows, cols) is chosen, else the largest of all. Returns ``(rows, cols)`` slices into the k-space grid (empty slices when the centre is not
    sampled). Unlike :func:`mriviewer.core.physics.masks.fully_sampled_center` (which grows a
    cross), every point of the returned block is sampled, also for 2-D masks."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    cy, cx = h // 2, w // 2
    if not mask[cy, cx]:
        return slice(cy, cy), slice(cx, cx)
    best = (0, cy, cy, cx, cx)  # area, top, bottom, left, right
    band_full = mask[cy].copy()  # columns fully sampled over rows [top, bottom)
    top, bottom = cy, cy + 1
    while True:
        left = right = cx
        while left > 0 and band_full[left - 1]:
            left -= 1
        while right < w - 1 and band_full[right + 1]:
            right += 1
        fits = bottom - top >= kernel[0] and right + 1 - left >= kernel[1]
        area = (bottom - top) * (right - left + 1) + (h * w if fits else 0)
        if area > best[0]:
            best = (area, top, bottom, left, right + 1)
        # add one row, above when the band is not taller above the centre, else below
        order = (top - 1, bottom) if cy - top <= bottom - 1 - cy else (bottom, top - 1)
        row = next((r for r in order if 0 <= r < h and mask[r, cx]), None)
        if row is None:
            break
        band_full &= mask[row]
        top, bottom = min(top, row), max(bottom, row + 1)
    _, top, bottom, left, right = best
    return slice(top, bottom), slice(left, right)


class Grappa:
    """GRAPPA k-space interpolation (pygrappa ``mdgrappa``), coils combined by RSS or maps.

    Settings: ``kernel_size`` (rows x cols of the kernel window, ``N``, ``"RxC"``, ``[R, C]`` or
    ``"auto"``, the default: 3 x 5 across the lines of a 1-D mask, 3 x 3 for a 2-D mask), ``lamda`` (Tikhonov weight of the kernel fit relative to the mean diagonal
    of ``S^H S``, pygrappa's convention, >= 0; ``lambda`` is an alias), ``combine`` (``rss``:
    root-sum-of-squares, no coil maps; ``sense``: ``sum_c conj(S_c) x_c`` with the problem's
    maps). Runs on the CPU with numpy whatever ``device`` is.
    """

    name = "grappa"

    def __init__(self, **settings: Any) -> None:
        if "lambda" in settings:
            settings["lamda"] = settings.pop("lambda")
        check_settings(self.name, settings, ("kernel_size", "lamda", "combine"))
        self.kernel_size = parse_kernel(settings.get("kernel_size", "auto"))
        self.lamda = as_number(self.name, "lamda", settings.get("lamda", DEFAULT_LAMDA), 0.0)
        combine = settings.get("combine", "rss")
        if combine not in COMBINES:
            raise ReconError(f"grappa: combine must be 'rss' or 'sense', got {combine!r}")
        self.combine = str(combine)

    @property
    def needs_coil_maps(self) -> bool:
        """Only ``combine="sense"`` uses coil maps (read by ``compare.needs_coil_maps``)."""
        return self.combine == "sense"

    def settings(self) -> dict[str, Any]:
        return {
            "kernel_size": "auto" if self.kernel_size is None else list(self.kernel_size),
            "lamda": self.lamda,
            "combine": self.combine,
        }

    def kernel_for(self, mask: np.ndarray) -> tuple[int, int]:
        """The kernel used on ``mask``: the setting, or :func:`auto_kernel` for ``"auto"``."""
        return auto_kernel(mask) if self.kernel_size is None else self.kernel_size

    def fill(self, problem: ReconProblem) -> np.ndarray:
        """The problem's ``(C, H, W)`` k-space with its unsampled points filled by GRAPPA.

        complex64, normalised units. Columns outside the data's acquired band (zero padding)
        stay zero. Raises :class:`ReconError` when the fully sampled centre is smaller than the
        kernel, or for single-coil data."""
        from pygrappa import mdgrappa

        kspace = np.asarray(problem.kspace)
        mask = np.asarray(problem.mask, dtype=bool)
        if kspace.shape[0] < 2:
            raise ReconError("grappa needs multi-coil k-space (this slice has one coil)")
        kr, kc = self.kernel_for(mask)
        rows, cols = calibration_block(mask, (kr, kc))
        acs = (rows.stop - rows.start, cols.stop - cols.start)
        if acs[0] < kr or acs[1] < kc:
            raise ReconError(
                f"grappa: the fully sampled centre (calibration region) is {acs[0]} x {acs[1]} "
                f"points; a {kr} x {kc} kernel needs at least {kr} x {kc} (raise "
                "--center-fraction or --calib, or set a smaller kernel_size)"
            )
        if mask.all():
            return kspace.astype(np.complex64)
        calib = np.ascontiguousarray(kspace[:, rows, cols])
        # pygrappa finds the holes as the exact zeros of the first coil: zero them by the mask
        data = np.ascontiguousarray(kspace * mask[None]).astype(np.complex64)
        # pygrappa's fit, from one Gram matrix (train_weights); pygrappa finds the holes and
        # applies the kernels. A window with no sampled point gets an empty kernel: zeros there.
        weights = train_weights(data[0] != 0, calib, (kr, kc), self.lamda)
        filled = mdgrappa(
            data, calib, kernel_size=(kr, kc), coil_axis=0, lamda=self.lamda, weights=weights
        )
        filled = np.asarray(filled, dtype=np.complex64)
        filled[:, mask] = data[:, mask]  # measured points are kept as measured
        band = problem.info.get("data_sampling", {}).get("band")
        if band is not None and (band[0] > 0 or band[1] < filled.shape[-1]):
            outside = np.ones(filled.shape[-1], dtype=bool)
            outside[band[0] : band[1]] = False
            filled[..., outside] = 0
        return filled

    def combine_coils(self, problem: ReconProblem, kspace: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` filled k-space -> ``(H, W)`` complex64 image (RSS or coil maps)."""
        coil_images = ifft2c_np(kspace)
        if self.combine == "rss":
            return np.sqrt((np.abs(coil_images) ** 2).sum(0)).astype(np.complex64)
        if problem.coil_maps is None:
            reason = problem.info.get("calibration_error", "none were estimated")
            raise ReconError(f"grappa with combine='sense' needs coil maps: {reason}")
        return (np.conj(problem.coil_maps) * coil_images).sum(0).astype(np.complex64)

    def iterate(self, problem: ReconProblem, device: str = "cpu") -> Iterator[IterationResult]:
        """Yield one final :class:`IterationResult`: the ``(H, W)`` complex64 GRAPPA image in
        normalised units (``extra``: ``acs_rows``, ``acs_cols`` of the calibration block and
        ``kernel``, e.g. ``"3x5"``)."""
        start = time.perf_counter()
        if self.combine == "sense" and problem.coil_maps is None:
            self.combine_coils(problem, problem.kspace[:, :1, :1])  # raises the reason
        filled = self.fill(problem)
        image = self.combine_coils(problem, filled)
        kernel = self.kernel_for(problem.mask)
        rows, cols = calibration_block(problem.mask, kernel)
        extra = {
            "acs_rows": rows.stop - rows.start,
            "acs_cols": cols.stop - cols.start,
            "kernel": f"{kernel[0]}x{kernel[1]}",
        }
        yield IterationResult(
            self.name, 0, image, time.perf_counter() - start, final=True, extra=extra
        )


def window_patterns(sampled: np.ndarray, kernel: tuple[int, int]) -> list[bytes]:
    """The distinct kernel-window sampling patterns around the unsampled points of an ``(H, W)``
    bool pattern, as pygrappa's ``mdgrappa`` keys them (``window.flatten().tobytes()``, the
    window zero-padded at the edges and centred on the hole, ``k // 2`` before it)."""
    from skimage.util import view_as_windows

    sampled = np.asarray(sampled, dtype=bool)
    h, w = sampled.shape
    padded = np.pad(sampled, [(k // 2, k // 2) for k in kernel])
    windows = view_as_windows(padded, tuple(kernel))[:h, :w][~sampled]
    unique = np.unique(windows.reshape(len(windows), -1), axis=0)
    return [row.tobytes() for row in unique]


def train_weights(
    sampled: np.ndarray, calib: np.ndarray, kernel: tuple[int, int], lamda: float
) -> dict[bytes, np.ndarray]:
    """GRAPPA kernels for every window pattern of ``sampled``, in pygrappa's ``weights`` format.

    sampled: ``(H, W)`` bool (the points pygrappa treats as measured); calib: ``(C, h, w)``
    complex fully sampled block. Returns ``{pattern: W}`` with ``W`` ``(n_sources * C, C)``
    complex128, the fit of pygrappa's ``mdgrappa`` (``W = (S^H S + lamda0 I)^-1 S^H T`` over the
    zero-padded calibration patches, ``lamda0 = lamda * ||S^H S||_F / rows``) computed from
    one Gram matrix of all window points with BLAS instead of one product per pattern (the
    per-pattern products were 90% of ``mdgrappa``'s time on the demo)."""
    from skimage.util import view_as_windows

    nc = calib.shape[0]
    pads = [k // 2 for k in kernel]
    block = np.pad(np.moveaxis(calib, 0, -1), [(p, p) for p in pads] + [(0, 0)])
    patches = view_as_windows(block, (*kernel, nc)).reshape(-1, kernel[0] * kernel[1] * nc)
    patches = patches.astype(np.complex128)
    gram = patches.conj().T @ patches
    centre = pads[0] * kernel[1] + pads[1]
    target = centre * nc + np.arange(nc)
    weights: dict[bytes, np.ndarray] = {}
    for key in window_patterns(sampled, kernel):
        points = np.flatnonzero(np.frombuffer(key, dtype=bool))
        sources = (points[:, None] * nc + np.arange(nc)).ravel()
        if sources.size == 0:
            weights[key] = np.zeros((0, nc), dtype=np.complex128)
            continue
        shs = gram[np.ix_(sources, sources)]
        lamda0 = lamda * np.linalg.norm(shs) / shs.shape[0]
        weights[key] = np.linalg.solve(
            shs + lamda0 * np.eye(shs.shape[0]), gram[np.ix_(sources, target)]
        )
    return weights
