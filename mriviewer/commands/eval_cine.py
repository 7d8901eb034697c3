"""``mriviewer eval`` on cine (2-D + time) files: the k-t branch of :mod:`mriviewer.commands.eval`.

A file is cine when :func:`mriviewer.core.io.cine.is_cine` says so (``demo-cine``, an HDF5 file
with ``dynamic = true`` or a rank-5 ``kspace``, a BART pair with TIME (dim 10) above 1, a ``.npy``
or ``.mat`` with ``--axes`` holding T). Every
selected cine slice is undersampled with a k-t mask (``--mask random|equispaced``, R per frame
``--accel``, shared band ``--center-fraction``, seed ``--seed`` or ``stable_seed(file name,
slice)``; :func:`mriviewer.core.physics.kt_masks.make_kt_mask`), coil maps are estimated once
from the time-averaged data and shared by the methods (``zero-filled``, ``cg-sense``, ``kt-l1``;
default all three). Metrics: fastMRI per-volume PSNR/SSIM/NMSE with every frame of every
selected slice stacked as a slice (data_range = the stacked reference's maximum); the JSON keys
are those of the 2-D eval, and ``settings.cases[CASE].psnr_per_frame[METHOD]`` lists the PSNR
of each frame (same data_range), slice after slice.

Undersampled cine files (a scanner's accelerated cine; a ``mask`` dataset or zeros where not
sampled) are reconstructed with their own k-t sampling as the mask
(:func:`mriviewer.core.cine.detect_kt_sampling`, ``--mask``/``--accel`` are not applied; R per
frame and overall in ``settings.cases[CASE].data_sampling``). Without the file's own reference
there is no ground truth: no PSNR/SSIM/NMSE; each method's ``dc_residual`` (``||M F S x - y|| /
||y||`` of its final iterate over the series, mean over the slices) and ``seconds`` instead.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from mriviewer import __version__
from mriviewer.core.errors import ConfigError, ReconError

CINE_METHODS_DEFAULT = "zero-filled,cg-sense,kt-l1"
METRIC_DEFINITION = (
    "fastMRI per-volume metrics on magnitude images in original units, centre-cropped to the "
    "reference, every frame of every evaluated cine slice stacked as a slice: PSNR and NMSE over "
    "the stack (data_range = its reference maximum), SSIM = mean over frames (skimage, 7x7, "
    "same data_range); psnr_per_frame with the same data_range; seconds = reconstruction time "
    "summed over slices, coil-map estimation excluded"
)


def evaluate_cine_files(
    args: argparse.Namespace, default_methods: str, case_names: list[str]
) -> dict[str, Any]:
    """The cine benchmark the options describe (same result shape as the 2-D
    ``evaluate_files``; ``case_names``: one per file). ``default_methods``: eval's 2-D default;
    when ``--methods`` is left at it, the cine methods are used instead."""
    from mriviewer.commands.common import (
        accel_of,
        method_options,
        model_acceleration_warning,
        parse_slices,
        resolve_device,
    )
    from mriviewer.core.cine import (
        cine_gt_free_metrics,
        cine_metrics,
        final_cine_record,
        get_cine_method,
    )
    from mriviewer.core.images import center_crop
    from mriviewer.core.io.cine import open_cine
    from mriviewer.core.physics.kt_masks import kt_summary
    from mriviewer.core.reference import describe_reference

    text = CINE_METHODS_DEFAULT if args.methods == default_methods else args.methods
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ConfigError("--methods names no method")
    if len(set(methods)) != len(methods):
        raise ConfigError(f"--methods lists a method twice: {text}")
    check_kt_mask_option(args.mask)
    device = resolve_device(args.device)
    built = {m: get_cine_method(m, **method_options(args.method_option, m)) for m in methods}
    cases: dict[str, dict[str, dict[str, float]]] = {}
    per_case: dict[str, dict[str, Any]] = {}
    for file, case in zip(args.files, case_names, strict=True):
        volume = open_cine(
            file, axes=getattr(args, "axes", None), variable=getattr(args, "variable", None)
        )
        slices = parse_slices(args.slices, volume.num_slices)
        refs: list[np.ndarray] = []
        preds: dict[str, list[np.ndarray]] = {m: [] for m in methods}
        residuals: dict[str, list[float]] = {m: [] for m in methods}
        seconds = dict.fromkeys(methods, 0.0)
        masks, warnings, method_errors, sampled = [], [], {}, []
        regions: list[np.ndarray | None] = []
        truths: set[bool] = set()
        for index in slices:
            problem, own, _, mask_notes = cine_slice_problem(args, volume, file, index)
            sampled.append(own.to_dict())
            warnings.extend(f"slice {index}: {w}" for w in mask_notes)
            masks.append(kt_summary(problem.mask))
            truths.add(problem.reference is not None)
            if len(truths) > 1:
                raise ReconError(
                    f"slice {index} has {'a' if problem.reference is not None else 'no'} ground "
                    "truth and an earlier slice has the other: evaluate them separately "
                    "(--slices)",
                    volume.path,
                )
            if problem.reference is not None:
                refs.append(problem.reference)
                regions.append(problem.foreground)
            warnings.extend(f"slice {index}: {w}" for w in problem.warnings)
            for method in built.values():  # a model outside its training R: said once a case
                note = model_acceleration_warning(method, problem.info["acceleration"])
                if note and note not in warnings:
                    warnings.append(note)
            for name, method in built.items():
                if name in method_errors:
                    continue
                start = time.perf_counter()
                try:
                    last = final_cine_record(method, problem, device)
                except ReconError as exc:
                    method_errors[name] = f"{volume.path.name}: slice {index}: {name}: {exc}"
                    continue
                seconds[name] += time.perf_counter() - start
                if problem.reference is None:
                    gt_free = cine_gt_free_metrics(problem, last.normalised)
                    residuals[name].append(gt_free.get("dc_residual", float("nan")))
                    continue
                preds[name].append(center_crop(np.abs(last.image), problem.reference.shape[-2:]))
        cases[case] = {}
        per_frame: dict[str, list[float]] = {}
        ground_truth = truths == {True}
        for name in methods:
            if name in method_errors:
                continue
            if not ground_truth:
                cases[case][name] = {
                    "dc_residual": float(np.mean(residuals[name])),
                    "seconds": seconds[name],
                }
                continue
            ref = np.concatenate(refs)
            pred = np.concatenate(preds[name])
            region = None if regions[0] is None else np.concatenate(regions)
            metrics = cine_metrics(ref, pred, region=region)
            per_frame[name] = metrics["psnr_per_frame"]
            cases[case][name] = {
                "psnr": metrics["psnr"],
                "ssim": metrics["ssim"],
                "nmse": metrics["nmse"],
                "seconds": seconds[name],
            }
        per_case[case] = {
            "file": str(volume.path),
            "dynamic": True,
            "slices": slices,
            "frames": volume.num_frames,
            "achieved_acceleration": float(np.mean([m["acceleration"] for m in masks])),
            "kt_masks": masks,
            "data_sampling": sampled,
            "ground_truth": ground_truth,
            "psnr_per_frame": per_frame,
            "warnings": warnings,
            "method_errors": method_errors,
        }
    settings = {
        "methods": methods,
        "method_settings": {m: built[m].settings() for m in methods},
        "mask": f"k-t {args.mask}",
        "accel": accel_of(args, cine=True),
        "center_fraction": args.center_fraction,
        "seed": args.seed if args.seed is not None else "stable_seed(file name, slice)",
        "slices": args.slices,
        "coil_method": args.coil_method,
        "virtual_coils": getattr(args, "virtual_coils", None),
        "coil_maps": "from the time-averaged k-space (union of the frames' masks)",
        "reference": args.reference,
        "reference_definition": (
            describe_reference(args.reference, args.metrics_region) + " (per frame)"
            if any(c["ground_truth"] for c in per_case.values())
            else describe_reference(None) + "; dc_residual = ||M F S x - y|| / ||y|| instead"
        ),
        "metrics_region": args.metrics_region,
        "device": device,
        "cases": per_case,
        "metrics": METRIC_DEFINITION,
        "mriviewer_version": __version__,
    }
    return {"cases": cases, "settings": settings}


def check_kt_mask_option(option: str, allow_auto: bool = False) -> None:
    """ConfigError (one line) unless ``option`` is a k-t mask kind or ``data`` (or ``auto``
    when ``allow_auto``: ``recon``'s default)."""
    from mriviewer.core.physics.kt_masks import KT_KINDS

    allowed = (*KT_KINDS, "data", *(("auto",) if allow_auto else ()))
    if option not in allowed:
        auto = "auto (data for undersampled input, else random), " if allow_auto else ""
        raise ConfigError(
            f"cine data takes a k-t mask: --mask {auto}{' or '.join(KT_KINDS)} (changing per "
            f"frame), or data (an undersampled file's own sampling), not {option!r}"
        )


def cine_slice_problem(
    args: argparse.Namespace, volume: Any, file: str, index: int
) -> tuple[Any, Any, str, list[str]]:
    """The k-t mask and :class:`~mriviewer.core.recon.cine.CineProblem` of cine slice ``index``
    the options ask for (``eval`` and ``recon`` share it): a fully sampled slice gets a drawn
    k-t mask (``--mask random|equispaced``, ``--accel``, ``--center-fraction``, ``--seed`` or
    ``stable_seed(file name, slice)``); an undersampled one its own k-t sampling
    (:func:`~mriviewer.core.cine.detect_kt_sampling`), with a note when another mask was asked
    for. ``--mask auto`` is ``data`` for undersampled slices, else ``random``. Returns
    ``(problem, own sampling, mask kind used, notes)``."""
    from mriviewer.commands.common import accel_of, mask_seed
    from mriviewer.core.cine import detect_kt_sampling, prepare_cine_problem
    from mriviewer.core.physics.kt_masks import make_kt_mask
    from mriviewer.core.physics.masks import MaskSpec

    kspace = volume.read_kspace(index)
    own = detect_kt_sampling(kspace, volume.mask)
    notes: list[str] = []
    option = args.mask
    if own.fully_sampled:
        if option == "data":
            raise ConfigError(
                f"{volume.path.name}: cine slice {index} is fully sampled: --mask data "
                "applies to undersampled files (draw a random or equispaced k-t mask)"
            )
        kind = "random" if option == "auto" else option
        spec = MaskSpec(
            kind=kind,
            acceleration=accel_of(args, cine=True),
            center_fraction=float(args.center_fraction),
            seed=mask_seed(args, file, index),
        )
        mask = make_kt_mask(spec, volume.num_frames, volume.matrix)
    else:  # an accelerated cine: its own k-t sampling is the mask
        kind = "data"
        mask = own.pattern
        if option not in ("data", "auto"):
            notes.append(
                f"undersampled ({own.describe()}): its own k-t sampling "
                f"is the mask, --mask {option} --accel {accel_of(args, cine=True):g} not applied"
            )
    problem = prepare_cine_problem(
        kspace,
        mask,
        reference=volume.read_reference(index) if args.reference == "rss" else None,
        recon_matrix=volume.recon_matrix,
        coil_method=args.coil_method,
        reference_kind=args.reference,
        source=f"{volume.path}#slice{index}",
        fully_sampled=own.fully_sampled,
        sampling=own,
        virtual_coils=getattr(args, "virtual_coils", None),
        metrics_region=getattr(args, "metrics_region", "all"),
    )
    return problem, own, kind, notes


def all_cine(files: list[str], axes: str | None) -> bool:
    """True when every file is cine, False when none is; ConfigError for a mix."""
    from mriviewer.core.io.cine import is_cine

    flags = [is_cine(f, axes) for f in files]
    if any(flags) and not all(flags):
        raise ConfigError("cine and 2-D files cannot be evaluated in one run")
    return bool(flags) and all(flags)
