"""``mriviewer recon`` on a cine (2-D + time) file: the k-t branch of :mod:`mriviewer.commands.recon`.

A file is cine when :func:`mriviewer.core.io.cine.is_cine` says so (``demo-cine``, a cine HDF5
file, a BART pair with TIME above 1, a ``.npy`` / ``.mat`` with ``--axes`` holding T). Cine
slice ``--slice`` is undersampled as ``mriviewer eval`` undersamples it
(:func:`mriviewer.commands.eval_cine.cine_slice_problem`): a fully sampled series gets a k-t mask
(``--mask auto|random`` or ``equispaced``, R per frame ``--accel``, shared band
``--center-fraction``, ``--seed`` or ``stable_seed(file name, slice)``), an undersampled one its
own k-t sampling (the default ``auto``, or ``--mask data``). Coil maps come from the
time-averaged data; the cine methods are ``zero-filled``, ``cg-sense``, ``kt-l1`` and
``model:NAME|PATH`` (``--method-option`` as in 2-D). The whole series is written atomically:

- ``.h5``: the reconstruction layout with a frames axis
  (:func:`mriviewer.core.export.write_recon_h5`): ``reconstruction`` ``(1, T, h, w)``,
  ``reconstruction_complex``, ``mask`` ``(T, H, W)``, the attributes of the 2-D ``recon`` plus
  ``dynamic``, ``frames`` and ``data_sampling``; ``metrics`` = PSNR/SSIM/NMSE over the series
  (frames stacked as slices, as ``eval``) with ``psnr_per_frame`` / ``ssim_per_frame``, or
  without ground truth ``ground_truth_free`` = ``dc_residual`` over the series,
  ``dc_residual_per_frame`` and ``rel_change`` of the last iteration.
- ``.npy``: ``(T, h, w)`` complex64; ``.nii`` / ``.nii.gz``: 4-D ``(h, w, 1, T)`` float32
  magnitude (time spacing from the file's ``frame_interval_s`` / ``frame_interval_ms``
  attribute when it has one, else 1 s, said in a note).
- ``.gif`` / ``.mp4``: an animation (:func:`mriviewer.core.cine_session.write_cine_animation`,
  ``--fps``), per-frame PSNR/SSIM captions with a reference, provenance in ``OUT.json``.
- ``.dcm``: a DICOM series, one single-frame image per frame (``NAME_frame000.dcm`` ...;
  :func:`mriviewer.core.export.write_cine_reconstruction`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer import __version__
from mriviewer.commands.common import (
    accel_of,
    coil_compression_note,
    model_acceleration_warning,
    quality_summary,
)
from mriviewer.core.errors import ConfigError

ANIMATION_SUFFIXES = (".gif", ".mp4")


def cine_out_suffix(out: Path) -> str:
    """The suffix of a cine output (one of ``.h5 .npy .nii .nii.gz .gif .mp4``); ConfigError
    (one line, naming what works) for anything else."""
    from mriviewer.core.export import CINE_RECON_SUFFIXES, recon_suffix

    suffix = recon_suffix(out, CINE_RECON_SUFFIXES + ANIMATION_SUFFIXES)
    if suffix is None:
        raise ConfigError(
            "--out for a cine series must end in .h5, .npy, .dcm (one file per frame), .nii, "
            f".nii.gz, .gif or .mp4, got {out.name!r}"
        )
    return suffix


def run_cine(args: argparse.Namespace) -> int:
    """``recon`` on a cine file (module docstring)."""
    from mriviewer.commands.common import method_options, resolve_device
    from mriviewer.commands.eval_cine import check_kt_mask_option, cine_slice_problem
    from mriviewer.core.cine import (
        cine_gt_free_metrics,
        cine_metrics,
        get_cine_method,
        stream_cine,
    )
    from mriviewer.core.compare import resolved_settings
    from mriviewer.core.export import (
        cine_dicom_paths,
        frame_interval_s,
        write_cine_reconstruction,
    )
    from mriviewer.core.images import center_crop
    from mriviewer.core.io.cine import open_cine
    from mriviewer.core.reference import describe_reference

    out = Path(args.out)
    suffix = cine_out_suffix(out)
    check_kt_mask_option(args.mask, allow_auto=True)
    device = resolve_device(args.device)
    volume = open_cine(args.file, axes=args.axes, variable=args.variable)
    method = get_cine_method(args.method, **method_options(args.method_option, args.method))
    index = volume.select_index(args.slice)
    problem, own, kind, notes = cine_slice_problem(args, volume, args.file, index)
    trained = model_acceleration_warning(method, problem.info["acceleration"])
    warnings = [*notes, *problem.warnings, *([trained] if trained else [])]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    start = time.perf_counter()
    last = previous = None
    for record in stream_cine(method, problem, device, metrics=False):
        previous, last = last, record
    seconds = time.perf_counter() - start
    if last is None:
        raise ConfigError(f"{args.method} produced no image")
    series = last.image
    metrics: dict[str, Any] | None = None
    gt_free: dict[str, Any] | None = None
    if problem.reference is not None:
        pred = center_crop(np.abs(series), problem.reference.shape[-2:])
        metrics = cine_metrics(
            problem.reference, pred, region=problem.foreground, ssim_per_frame=True
        )
    else:
        gt_free = cine_gt_free_metrics(
            problem,
            last.normalised,
            None if previous is None else previous.normalised,
            per_frame=True,
        )
    mask_info: dict[str, Any] = {"kind": kind, "option": args.mask, **problem.info["mask"]}
    if kind == "data":
        mask_info["description"] = f"the data's own k-t sampling ({own.source})"
    else:
        mask_info["spec"] = {
            "kind": kind,
            "acceleration": accel_of(args, cine=True),
            "center_fraction": float(args.center_fraction),
            "seed": _seed(args, index),
            "seed_from": "--seed" if args.seed is not None else "stable_seed(file name, slice)",
        }
        mask_info["seed"] = _seed(args, index)
    attrs: dict[str, Any] = {
        "method": args.method,
        "method_settings": json.dumps(resolved_settings(method.settings(), last.extra)),
        "mask": json.dumps(mask_info),
        "achieved_acceleration": problem.info["acceleration"],
        "source": str(volume.path),
        "slice": index,
        "frames": volume.num_frames,
        "dynamic": True,
        "iterations": last.iteration,
        "seconds": seconds,
        "device": device,
        "scale": problem.scale,
        "coil_method": args.coil_method,
        "virtual_coils": json.dumps(problem.info.get("virtual_coils")),
        "reference": problem.reference_kind or "none",
        "reference_definition": (
            describe_reference(problem.reference_kind, problem.metrics_region) + " (per frame)"
            if problem.reference is not None
            else describe_reference(None)
        ),
        "metrics_region": problem.metrics_region,
        "acceleration": problem.info["acceleration"],
        "data_sampling": json.dumps(own.to_dict()),
        "warnings": json.dumps(warnings),
        "prewhitened": False,
        "generator": f"mriviewer {__version__} recon",
    }
    if metrics is not None:
        attrs["metrics"] = json.dumps(metrics)
    if gt_free is not None:
        attrs["ground_truth_free"] = json.dumps(gt_free)
    shown = out
    if suffix in ANIMATION_SUFFIXES:
        written_notes, description = _write_animation(out, series, problem, attrs, metrics, args)
    else:
        written = write_cine_reconstruction(
            out,
            series,
            attrs=attrs,
            mask=problem.mask,
            header=volume.header,
            metrics=metrics if metrics is not None else gt_free,
            time_spacing_s=frame_interval_s(volume.header),
        )
        written_notes, description = written.notes, written.description
        if suffix == ".dcm":  # one file per frame (the description names them): the folder
            shown = cine_dicom_paths(out, series.shape[0])[0].parent
    accel = problem.info["mask"]
    per = accel["acceleration_per_frame"]
    spread = f" (per frame {min(per):.2f}-{max(per):.2f})" if max(per) - min(per) > 1e-6 else ""
    line = (
        f"{args.method} on {volume.path.name} slice {index}, {volume.num_frames} frames: "
        + (f"{last.iteration} iteration(s), " if last.iteration else "direct (no iterations), ")
        + f"{seconds:.2f} s, k-t mask {kind} R={problem.info['acceleration']:.2f}{spread}"
    )
    line += quality_summary(
        metrics,
        gt_free,
        f"(vs {problem.reference_kind} reference per frame"
        + (", foreground)" if problem.foreground is not None else ")"),
        no_residual="no coil maps",
        scope=" over the series",
    )
    print(line)
    compression = coil_compression_note(problem.info)
    if compression:
        print(f"note: {compression}")
    for note in written_notes:
        print(f"note: {note}")
    print(f"wrote {shown}" + (f" ({description})" if description else ""))
    return 0


def _seed(args: argparse.Namespace, index: int) -> int:
    from mriviewer.commands.common import mask_seed

    return mask_seed(args, args.file, index)


def _write_animation(
    out: Path,
    series: np.ndarray,
    problem: Any,
    attrs: dict[str, Any],
    metrics: dict[str, Any] | None,
    args: argparse.Namespace,
) -> tuple[list[str], str]:
    """``.gif`` / ``.mp4`` of the series' magnitude with the existing animation writer."""
    from mriviewer.core.cine_session import (
        AnimationPane,
        frame_captions,
        write_cine_animation,
    )
    from mriviewer.core.export import json_value
    from mriviewer.core.images import center_crop

    magnitude = np.abs(series).astype(np.float32)
    captions = None
    if problem.reference is not None:
        magnitude = center_crop(magnitude, problem.reference.shape[-2:])
    if metrics is not None:  # the per-frame figures recon has just computed
        captions = frame_captions(metrics["psnr_per_frame"], metrics["ssim_per_frame"])
    peak = float(np.percentile(magnitude, 99.5)) or 1.0
    sidecar = {k: json_value(v) for k, v in attrs.items()}
    fps = float(getattr(args, "fps", 8.0))
    write_cine_animation(
        out,
        [AnimationPane(args.method, magnitude, captions)],
        (0.0, peak),
        fps,
        sidecar,
        f"R {attrs['acceleration']:.2f}, {Path(attrs['source']).name} slice {attrs['slice']}",
    )
    t = magnitude.shape[0]
    kind = out.suffix.lower().lstrip(".").upper()
    return [], f"{kind} animation, {t} frames at {fps:g} fps, provenance in {out.name}.json"
