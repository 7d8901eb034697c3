"""Command-line pieces shared by ``recon``, ``eval`` and other subcommands.

- :func:`add_mask_arguments` / :func:`mask_from_args`: ``--mask random|equispaced|poisson|
  gaussian|data|auto|FILE.npy``, ``--accel``, ``--center-fraction``, ``--calib``, ``--seed``.
  Without ``--seed`` the seed is ``stable_seed(file name, slice)``, so evaluation masks are
  reproducible per case.
- :func:`add_device_argument` / :func:`resolve_device`: ``--device auto|cpu|cuda|cuda:N``.
- :func:`add_coil_method_argument`: ``--coil-method espirit|jsense|lowres`` (default espirit).
- :func:`add_reader_arguments` / :func:`reader_options`: ``--variable NAME`` and ``--axes AXES``
  for array files, ``--encoding N`` for MRD files with several encoding spaces,
  ``--no-prewhiten`` (files with noise data are prewhitened by default).
- :func:`add_method_option_argument` / :func:`method_options`: ``--method-option KEY=VALUE``
  (or ``METHOD.KEY=VALUE`` to target one method), values parsed as int, float, bool or text.
- :func:`parse_slices`: ``all``, ``K`` or ``A:B`` -> slice indices.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import ConfigError, MaskError
from mriviewer.core.physics.band import FULLY_SAMPLED_FRACTION, AcquiredBand, acquired_band
from mriviewer.core.physics.masks import (
    MASK_KINDS,
    MaskSpec,
    SamplingMask,
    load_mask,
    make_mask,
    stable_seed,
)
from mriviewer.core.resources import resolve_input

GENERATED_MASKS = tuple(k for k in MASK_KINDS if k != "array")


def add_mask_arguments(parser: argparse.ArgumentParser, allow_auto: bool = False) -> None:
    """Add the sampling-mask options (shared by ``recon`` and ``eval``).

    ``allow_auto``: the default becomes ``auto`` (``data`` for undersampled input, else
    ``random``), for commands that accept already undersampled files.
    """
    group = parser.add_argument_group("sampling mask")
    auto = "auto (default: data for undersampled input, else random), " if allow_auto else ""
    group.add_argument(
        "--mask",
        default="auto" if allow_auto else "random",
        metavar="KIND|FILE.npy",
        help=f"{auto}random (fastMRI 1-D{'' if allow_auto else ', default'}), equispaced "
        "(1-D), poisson (2-D), gaussian (2-D), data (the file's own sampling: its non-zero "
        "k-space points) or an (H, W) .npy mask",
    )
    group.add_argument(
        "--accel",
        type=float,
        default=None,
        help="acceleration factor R (default 4; 8 per frame on cine files, as the app)",
    )
    group.add_argument(
        "--center-fraction",
        type=float,
        default=0.08,
        help="fully sampled centre fraction of 1-D masks (default 0.08)",
    )
    group.add_argument(
        "--calib", type=int, default=20, help="calibration square of 2-D masks, pixels (20)"
    )
    group.add_argument(
        "--seed",
        type=int,
        default=None,
        help="mask seed (default: a stable hash of the file name and slice, reproducible)",
    )


def mask_seed(args: argparse.Namespace, file: str | Path, slice_index: int) -> int:
    """``--seed`` if given, else ``stable_seed(file name, slice)`` (``demo`` -> its file name)."""
    if args.seed is not None:
        return int(args.seed)
    return stable_seed(resolve_input(file).name, int(slice_index))


def accel_of(args: argparse.Namespace, cine: bool = False) -> float:
    """``--accel``, or its default: 4 on 2-D files, :data:`DEFAULT_CINE_ACCELERATION` (8, R per
    frame) on cine files, the app's k-t default and the R the bundled cine models train at."""
    from mriviewer.core.physics.kt_masks import DEFAULT_CINE_ACCELERATION

    if getattr(args, "accel", None) is not None:
        return float(args.accel)
    return DEFAULT_CINE_ACCELERATION if cine else 4.0


def mask_from_args(
    args: argparse.Namespace,
    shape: tuple[int, int],
    file: str | Path,
    slice_index: int,
    kspace: np.ndarray | None = None,
    band: AcquiredBand | None = None,
) -> SamplingMask:
    """The ``(H, W)`` mask the options ask for, for slice ``slice_index`` of ``file``.

    ``kspace`` ``(C, H, W)`` is needed for ``--mask data`` (its non-zero points).
    ``band``: the acquired phase-encode columns (zero-padded fastMRI files; see
    :func:`mriviewer.core.physics.band.acquired_band`); None = detected from ``kspace`` when
    given, else all columns. Masks are drawn inside the band and R is reported over it.
    Raises :class:`MaskError` for a bad file or settings.
    """
    if band is None and kspace is not None:
        band = acquired_band(kspace)
    columns = None if band is None else band.columns
    kind = resolved_mask_kind(args.mask, kspace, band)
    if kind == "data":
        if kspace is None:
            raise MaskError("--mask data needs the k-space of the slice")
        sampled = np.any(np.asarray(kspace) != 0, axis=0)
        return SamplingMask(
            sampled, MaskSpec(kind="array", acceleration=1.0, seed=None), band=columns
        )
    if kind in GENERATED_MASKS:
        spec = MaskSpec(
            kind=kind,
            acceleration=accel_of(args),
            center_fraction=float(args.center_fraction),
            calib=int(args.calib),
            seed=mask_seed(args, file, slice_index),
        )
        return make_mask(spec, shape, band=columns)
    path = Path(kind)
    if path.suffix != ".npy" and not path.exists():
        raise MaskError(
            f"unknown mask {kind!r}: use one of {', '.join(GENERATED_MASKS)}, data, or a .npy file"
        )
    loaded = load_mask(path, shape=shape)
    if columns is None:
        return loaded
    return SamplingMask(loaded.array, loaded.spec, band=columns)


def sampled_fraction(kspace: np.ndarray, band: AcquiredBand | None = None) -> float:
    """Fraction of ``(C, H, W)`` k-space positions that hold data in any coil, counted inside
    the acquired ``band`` (all columns when None): zero-padded columns are not "unsampled"."""
    held = np.any(np.asarray(kspace) != 0, axis=0)
    if band is not None:
        held = held[..., band.start : band.stop]
    return float(held.mean())


def resolved_mask_kind(
    kind: str, kspace: np.ndarray | None, band: AcquiredBand | None = None
) -> str:
    """``auto`` -> ``data`` when ``kspace`` is undersampled (< 95% non-zero inside the acquired
    ``band``; None = detected from ``kspace``), else ``random``."""
    if kind != "auto":
        return kind
    if kspace is not None:
        if band is None:
            band = acquired_band(kspace)
        if sampled_fraction(kspace, band) < FULLY_SAMPLED_FRACTION:
            return "data"
    return "random"


def mask_description(mask: SamplingMask, option: str, kind: str) -> dict[str, Any]:
    """JSON-ready description of a mask: spec, shape, achieved acceleration (over the acquired
    band, given as ``band`` when not all columns), ``warnings`` (one line each), the ``--mask``
    option as given and the kind it resolved to (``auto`` -> ``data`` or ``random``)."""
    out = mask.to_dict()
    out["option"] = option
    out["kind"] = kind
    return out


def add_reference_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--reference rss|sense`` (default rss, fastMRI's) and ``--metrics-region
    all|foreground`` (default all): what metrics are measured against and where."""
    from mriviewer.core.reference import METRIC_REGIONS, REFERENCE_KINDS

    group = parser.add_argument_group("metrics")
    group.add_argument(
        "--reference",
        default="rss",
        choices=REFERENCE_KINDS,
        help="reference convention: rss (fastMRI, default) or sense (the fully sampled data "
        "combined with ESPIRiT maps of the fully sampled data, as the MoDL/GLEAM/PUN papers)",
    )
    group.add_argument(
        "--metrics-region",
        default="all",
        choices=METRIC_REGIONS,
        help="pixels the metrics cover: all (default) or foreground (the reference "
        "thresholded at 10%% of its 99th percentile, holes filled; the same for every method)",
    )


def problem_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword settings of ``compare.prepare_problem`` from ``--coil-method``, ``--reference``
    and ``--metrics-region``."""
    return {
        "coil_method": args.coil_method,
        "reference_kind": args.reference,
        "metrics_region": args.metrics_region,
        "virtual_coils": getattr(args, "virtual_coils", None),
    }


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` (default ``auto``: CUDA when available, else CPU)."""
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device: auto (default: cuda if available), cpu, cuda, cuda:N",
    )


def add_coil_method_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--coil-method espirit|jsense|lowres`` (default ``espirit``) and ``--virtual-coils V``
    (coil compression before every method, default none)."""
    parser.add_argument(
        "--coil-method",
        default="espirit",
        choices=("espirit", "jsense", "lowres"),
        help="coil-map estimation (default espirit)",
    )
    parser.add_argument(
        "--virtual-coils",
        type=int,
        default=None,
        metavar="V",
        help="compress the k-space to V virtual coils (SVD over coils) before coil maps and "
        "every method (default: all coils)",
    )


def add_reader_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--variable`` and ``--axes``: which array and which layout to read from
    ``.npy``/``.npz``/``.mat`` files (both default to None: the reader decides)."""
    parser.add_argument(
        "--variable", default=None, metavar="NAME", help="array to read from .npz/.mat files"
    )
    parser.add_argument(
        "--axes",
        default=None,
        metavar="AXES",
        help="layout of .npy/.npz/.mat arrays, letters S C H W (e.g. HWC); default by rank",
    )
    parser.add_argument(
        "--encoding",
        type=int,
        default=None,
        metavar="N",
        help="encoding space of an ISMRMRD/MRD file with several (default 0)",
    )
    parser.add_argument(
        "--no-prewhiten",
        dest="prewhiten",
        action="store_false",
        help="do not prewhiten k-space with the file's noise data (MRD noise acquisitions, "
        "TWIX noise scan); files without noise data are never prewhitened",
    )


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """``open_kspace`` keyword options from :func:`add_reader_arguments`' flags (unset ones are
    left out, so each reader keeps its own default; ``prewhiten`` is always given)."""
    options = {
        key: getattr(args, key, None)
        for key in ("variable", "axes", "encoding")
        if getattr(args, key, None) is not None
    }
    options["prewhiten"] = bool(getattr(args, "prewhiten", True))
    return options


def resolve_device(text: str) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; checks that a requested device exists
    (:func:`mriviewer.core.device.resolve_device`)."""
    from mriviewer.core.device import resolve_device as resolve

    return resolve(text)


def add_method_option_argument(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--method-option KEY=VALUE`` (``METHOD.KEY=VALUE`` for one method)."""
    parser.add_argument(
        "--method-option",
        action="append",
        default=[],
        metavar="[METHOD.]KEY=VALUE",
        help="method setting, repeatable, e.g. lamda=0.01, max_iter=20, l1-wavelet.lamda=0.005",
    )


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def method_options(items: list[str], method: str, only_targeted: bool = False) -> dict[str, Any]:
    """Settings for ``method`` from ``KEY=VALUE`` / ``METHOD.KEY=VALUE`` items.

    Untargeted ``KEY=VALUE`` items apply to every method unless ``only_targeted``.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"method option {item!r} must look like KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip()
        target = None
        if "." in key:
            target, key = key.rsplit(".", 1)
        if not key:
            raise ConfigError(f"method option {item!r} has no key")
        if target is None and only_targeted:
            continue
        if target is None or target == method:
            out[key] = _value(value.strip())
    return out


def parse_slices(text: str, num_slices: int) -> list[int]:
    """``all``, ``K`` (negative counts from the end) or ``A:B`` (half-open) -> slice indices."""
    text = str(text).strip()
    if text == "all":
        return list(range(num_slices))
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            start = int(a) if a else 0
            stop = int(b) if b else num_slices
            indices = list(range(num_slices))[start:stop]
        else:
            k = int(text)
            if not -num_slices <= k < num_slices:
                raise ConfigError(f"slice {k} out of range: the file has {num_slices} slice(s)")
            indices = [k % num_slices]
    except ValueError as exc:
        raise ConfigError(f"--slices must be all, K or A:B, got {text!r}") from exc
    if not indices:
        raise ConfigError(f"--slices {text} selects no slice (the file has {num_slices})")
    return indices


def quality_summary(
    metrics: dict[str, Any] | None,
    gt_free: dict[str, Any] | None,
    against: str,
    no_residual: str,
    scope: str = "",
) -> str:
    """The tail of recon's summary line: PSNR/SSIM ``against`` the reference, or without ground
    truth the data-consistency residual (``no_residual`` says why it is missing) and the last
    change. ``scope`` (e.g. " over the series") follows the measures."""
    if metrics is not None:
        return f", PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}{scope} {against}"
    gt_free = gt_free or {}
    measures = [
        f"data-consistency residual {gt_free['dc_residual']:.4f}{scope}"
        if "dc_residual" in gt_free
        else f"no data-consistency residual ({no_residual})",
        f"last change {gt_free['rel_change']:.2e}" if "rel_change" in gt_free else "",
    ]
    return ", no ground truth: " + ", ".join(m for m in measures if m)


def coil_compression_note(info: dict[str, Any]) -> str | None:
    """``"coil compression: 8 -> 4 virtual coils (97.1% of the sampled k-space energy)"`` from a
    problem's ``info["virtual_coils"]``, or None when the data were not compressed."""
    vc = info.get("virtual_coils")
    if not vc:
        return None
    return (
        f"coil compression: {vc['from']} -> {vc['to']} virtual coils "
        f"({100 * vc['energy']:.1f}% of the sampled k-space energy)"
    )


def model_acceleration_warning(method: Any, acceleration: float) -> str | None:
    """A warning when ``method`` is a trained model whose card's accelerations do not include
    the mask's ``acceleration`` (within 10%): its numbers are then out of its training setting
    (e.g. ``cine-dense``, trained at R 8, on recon's default R 4)."""
    inner = getattr(method, "method", method)  # a cine model wraps the 2-D model method
    card = getattr(inner, "card", None)
    trained = [float(r) for r in getattr(card, "accelerations", None) or []]
    if not trained or any(abs(acceleration - r) <= 0.1 * r for r in trained):
        return None
    listed = ", ".join(f"{r:g}" for r in trained)
    return (
        f"{inner.name} was trained at R {listed} (its card); this mask is R {acceleration:.2f}: "
        "outside its training setting"
    )
