"""``mriviewer recon FILE --slice K --method M --out OUT.h5|.npy|.dcm|.nii[.gz]``: reconstruct one slice.

The slice is undersampled retrospectively with the ``--mask`` options (``--mask data`` keeps the
file's own sampling; the default ``auto`` does that for undersampled input and draws a ``random``
mask for fully sampled input), coil maps are estimated from the sampled centre, and the method's final
iterate is written atomically:

- ``.h5``: ``reconstruction`` ``(1, h, w)`` float32 magnitude and ``reconstruction_complex``
  ``(1, h, w)`` complex64 in the file's original units (centre-cropped to the recon matrix),
  ``mask`` ``(H, W)`` uint8, and attributes ``method``, ``method_settings``, ``mask`` (spec and
  achieved acceleration), ``source``, ``slice``, ``iterations``, ``seconds``, ``device``,
  ``scale``, ``reference`` (rss | sense | none), ``reference_definition``, ``metrics_region``,
  ``acceleration`` (achieved R of the sampling used, against the full grid), ``warnings``, and
  ``metrics`` (with a reference) or ``ground_truth_free`` (``dc_residual`` = ||M F S x - y|| /
  ||y|| and ``rel_change`` of the last iteration, without one), JSON-encoded where nested.
- ``.npy``: the ``(h, w)`` complex64 image in original units.
- ``.dcm``: a DICOM image (uint16 magnitude with RescaleSlope; pixel spacing from the file's
  header where it gives the field of view), ``.nii`` / ``.nii.gz``: a NIfTI-1 float32 magnitude
  image; see :mod:`mriviewer.core.export`.

A cine (2-D + time) file (``demo-cine``, a cine HDF5 file, BART with TIME, ``.npy`` / ``.mat``
with ``--axes`` holding T) is reconstructed as a series with k-t masks and written to ``.h5``,
``.npy``, 4-D ``.nii[.gz]``, ``.gif`` or ``.mp4``: :mod:`mriviewer.commands.recon_cine`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mriviewer import __version__
from mriviewer.commands.common import (
    add_coil_method_argument,
    add_device_argument,
    add_mask_arguments,
    add_method_option_argument,
    add_reader_arguments,
    add_reference_arguments,
    coil_compression_note,
    mask_description,
    mask_from_args,
    method_options,
    model_acceleration_warning,
    problem_options,
    quality_summary,
    reader_options,
    resolve_device,
    resolved_mask_kind,
)
from mriviewer.core.errors import ConfigError
from mriviewer.core.export import recon_suffix, write_reconstruction
from mriviewer.core.physics.band import acquired_band


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "recon",
        help="reconstruct one slice with a method and write it (.h5, .npy, .dcm, .nii[.gz])",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", help="k-space file (any readable format), 'demo' or a cine file ('demo-cine')"
    )
    parser.add_argument("--slice", type=int, default=0, help="slice index (default 0)")
    parser.add_argument(
        "--method",
        default="cg-sense",
        help="zero-filled, zero-filled-rss, cg-sense (default), l1-wavelet, grappa, a plugin "
        "method (mriviewer methods), model:NAME|PATH",
    )
    add_method_option_argument(parser)
    add_mask_arguments(parser, allow_auto=True)
    add_reference_arguments(parser)
    add_coil_method_argument(parser)
    add_device_argument(parser)
    add_reader_arguments(parser)
    parser.add_argument(
        "--out",
        required=True,
        help="output file: .h5, .npy, .dcm (DICOM), .nii or .nii.gz; a cine series: .h5, "
        ".npy, .nii[.gz] (4-D), .gif or .mp4",
    )
    parser.add_argument(
        "--fps", type=float, default=8.0, help="frames per second of a cine .gif/.mp4 (8)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from mriviewer.core.compare import (
        final_record,
        get_method,
        prepare_from_volume,
        resolved_settings,
    )
    from mriviewer.core.io import open_kspace
    from mriviewer.core.io.cine import is_cine
    from mriviewer.core.reference import describe_reference

    if is_cine(args.file, args.axes):  # 2-D + time: the k-t branch
        from mriviewer.commands.recon_cine import run_cine

        return run_cine(args)
    out = Path(args.out)
    if recon_suffix(out) is None:
        raise ConfigError(f"--out must end in .h5, .npy, .dcm, .nii or .nii.gz, got {out.name!r}")
    device = resolve_device(args.device)
    volume = open_kspace(args.file, **reader_options(args))  # the file's problems first
    method = get_method(args.method, **method_options(args.method_option, args.method))
    index = volume.select_index(args.slice)
    kspace = volume.read_kspace(index)
    band = acquired_band(kspace, volume.header)
    mask_kind = resolved_mask_kind(args.mask, kspace, band)
    mask = mask_from_args(args, volume.matrix, args.file, index, kspace=kspace, band=band)
    problem = prepare_from_volume(volume, mask, index, **problem_options(args))
    problem.warnings[:0] = [*band.warnings, *mask.warnings]
    trained = model_acceleration_warning(method, problem.info["acceleration"])
    if trained:
        problem.warnings.append(trained)
    for warning in problem.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    start = time.perf_counter()
    last = final_record(method, problem, device)
    seconds = time.perf_counter() - start
    image = last.image
    metrics = last.metrics if problem.reference is not None else None
    gt_free = None if metrics is not None else last.metrics
    attrs = {
        "method": args.method,
        "method_settings": json.dumps(resolved_settings(method.settings(), last.extra)),
        "mask": json.dumps(
            {"kind": "data", "option": args.mask, "description": "the data's own sampling"}
            | {"achieved_acceleration": problem.info["acceleration"]}
            if mask_kind == "data"
            else mask_description(mask, args.mask, mask_kind)
        ),
        "achieved_acceleration": mask.achieved_acceleration,
        "source": str(volume.path),
        "slice": index,
        "iterations": last.iteration,
        "seconds": seconds,
        "device": device,
        "scale": problem.scale,
        "coil_method": args.coil_method,
        "virtual_coils": json.dumps(problem.info.get("virtual_coils")),
        "reference": problem.reference_kind or "none",
        "reference_definition": describe_reference(problem.reference_kind, args.metrics_region),
        "metrics_region": args.metrics_region,
        "acceleration": problem.info["acceleration"],
        "warnings": json.dumps(problem.warnings),
        "prewhitened": bool(volume.whitened),
        "generator": f"mriviewer {__version__} recon",
    }
    if metrics is not None:
        attrs["metrics"] = json.dumps(metrics)
    if gt_free is not None:
        attrs["ground_truth_free"] = json.dumps(gt_free)
    written = write_reconstruction(out, image, attrs=attrs, mask=mask.array, header=volume.header)
    line = (
        f"{args.method} on {volume.path.name} slice {index}: "
        + (f"{last.iteration} iteration(s), " if last.iteration else "direct (no iterations), ")
        + f"{seconds:.2f} s, mask {mask_kind} R={problem.info['acceleration']:.2f}"
    )
    if mask_kind != "data" and not problem.info["fully_sampled"]:
        own = problem.info["data_sampling"]["acceleration"]
        line += f" (R {mask.spec.acceleration:g} on top of the data's own R {own:.2f})"
    region = ", foreground" if args.metrics_region == "foreground" else ""
    line += quality_summary(
        metrics,
        gt_free,
        f"(vs {problem.reference_kind} reference{region})",
        no_residual="RSS image, no phase",
    )
    print(line)
    compression = coil_compression_note(problem.info)
    if compression:
        print(f"note: {compression}")
    for note in written.notes:
        print(f"note: {note}")
    print(f"wrote {out}" + (f" ({written.description})" if written.description else ""))
    return 0


def write_output(path: Path, image: np.ndarray, mask: np.ndarray, attrs: dict) -> None:
    """Write the ``(h, w)`` complex image atomically (see :func:`mriviewer.core.export.write_reconstruction`)."""
    write_reconstruction(path, image, attrs=attrs, mask=mask)
