"""``mriviewer eval FILES... --methods A,B,...``: retrospective undersampling benchmark.

Each FILE (fully sampled; ``demo`` is the bundled case) is one case. Every selected slice is
undersampled with the ``--mask`` options (without ``--seed`` each slice gets
``stable_seed(file name, slice)``), coil maps are estimated once per slice from the sampled centre
(ESPIRiT) and shared by all methods, and every method reconstructs it. Metrics are fastMRI's
per-volume figures on magnitude images in original units, centre-cropped to the reference:
PSNR and NMSE over the stacked slices (PSNR data_range = the volume's reference maximum), SSIM
the mean over slices (same data_range). ``seconds`` is each method's reconstruction time summed
over the slices (coil-map estimation excluded). JSON (``--json``)::

    {"cases": {CASE: {METHOD: {"psnr": .., "ssim": .., "nmse": .., "seconds": ..}}},
     "settings": {..., "reference": "rss"|"sense", "metrics_region": "all"|"foreground",
                  "cases": {CASE: {..., "warnings": [...],
                                   "resolved": {METHOD: {what an "auto" setting became}}}}},
     "failures": [{"case": CASE, "file": .., "error": ..}]}

Each file is evaluated on its own: a file that fails (unreadable, implausible layout, NaN/Inf,
not fully sampled) is reported in one line, recorded in ``failures`` and as
``settings["cases"][CASE]["error"]`` (absent from ``cases``), the others are still evaluated and
written, and the exit status is 1. Reader options (``--variable``, ``--axes``, ``--encoding``,
``--no-prewhiten``) apply to every file.

``--reference`` picks the convention (rss, fastMRI's, by default; sense: the MoDL/GLEAM/PUN
papers'), ``--metrics-region foreground`` restricts every metric to the reference's foreground
mask; both are printed above the table and recorded in ``settings``.

CASE is the file name as given (``demo`` for the demo); METHOD the names given to ``--methods``.

Cine files (2-D + time, ``demo-cine``; :mod:`mriviewer.commands.eval_cine`) get k-t masks (a
different mask per frame with a shared calibration band), the methods zero-filled, cg-sense
(per frame) and kt-l1, the same JSON keys with the frames stacked as slices, and
``settings.cases[CASE].psnr_per_frame``.
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
    add_coil_method_argument,
    add_device_argument,
    add_mask_arguments,
    add_method_option_argument,
    add_reader_arguments,
    add_reference_arguments,
    mask_from_args,
    method_options,
    model_acceleration_warning,
    parse_slices,
    problem_options,
    reader_options,
    resolve_device,
    sampled_fraction,
)
from mriviewer.core.errors import ConfigError, MriViewerError, ReconError
from mriviewer.core.physics.band import FULLY_SAMPLED_FRACTION, AcquiredBand, acquired_band

DEFAULT_METHODS = "zero-filled,cg-sense,l1-wavelet"
METRIC_DEFINITION = (
    "fastMRI per-volume metrics on magnitude images in original units, centre-cropped to the "
    "reference: PSNR and NMSE over all evaluated slices of a case (data_range = reference "
    "maximum over those slices), SSIM = mean over slices (skimage, 7x7, same data_range); "
    "seconds = reconstruction time summed over slices, coil-map estimation excluded"
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="undersample fully sampled files and compare methods (PSNR, SSIM, NMSE, seconds)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="fully sampled files, 'demo' or 'demo-cine'"
    )
    parser.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help="comma-separated methods (default zero-filled,cg-sense,l1-wavelet; also grappa "
        "and plugin methods: mriviewer methods); model:NAME|PATH for trained models. Cine "
        "files (2-D + time; k-t masks): zero-filled, cg-sense, kt-l1 (the default there)",
    )
    add_method_option_argument(parser)
    add_mask_arguments(parser)
    parser.add_argument(
        "--slices", default="all", help="slices per file: all (default), K or A:B (half-open)"
    )
    add_reference_arguments(parser)
    add_coil_method_argument(parser)
    add_device_argument(parser)
    add_reader_arguments(parser)
    parser.add_argument("--json", dest="json_out", default=None, help="write results as JSON")
    parser.set_defaults(func=run)


def _case_names(files: list[str]) -> list[str]:
    names = [Path(f).name for f in files]
    if len(set(names)) != len(names):
        names = [str(f) for f in files]
    if len(set(names)) != len(names):
        raise ConfigError("the same file is given twice")
    return names


def _check_fully_sampled(
    kspace: np.ndarray, path: Path, index: int, band: AcquiredBand | None = None
) -> None:
    """Refuse a slice with less than 95% non-zero points inside its acquired ``band``
    (zero-padded fastMRI columns are outside it, not "unsampled")."""
    sampled = sampled_fraction(kspace, band)
    if sampled < FULLY_SAMPLED_FRACTION:
        where = "" if band is None or band.is_full else f" inside the acquired {band.describe()}"
        raise ReconError(
            f"slice {index} is not fully sampled ({100 * sampled:.0f}% of k-space points{where} "
            "are non-zero): eval needs fully sampled data to undersample retrospectively",
            path,
        )


def evaluate_each(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`evaluate_files` one file at a time: a file that fails (unreadable, NaN, not fully
    sampled, a method error) is recorded and the others are still evaluated.

    The result is :func:`evaluate_files`' (same keys) with ``settings["cases"][CASE]["error"]``
    for each failed case (absent from ``cases``) and a top-level ``failures`` list of
    ``{"case", "file", "error"}`` (plus ``"method"`` for a method refused on a case whose other
    methods were evaluated: ``settings["cases"][CASE]["method_errors"]``). Raises the error
    itself when every case failed.
    """
    from mriviewer.commands.eval_cine import all_cine

    names = _case_names(args.files)
    if not all_cine(args.files, getattr(args, "axes", None)):  # refuses a mix of cine and 2-D
        _refuse_cine_models(args.methods)
    merged: dict[str, Any] | None = None
    failures: list[dict[str, str]] = []
    for file, case in zip(args.files, names, strict=True):
        one = argparse.Namespace(**{**vars(args), "files": [file]})
        try:
            result = evaluate_files(one)
        except MriViewerError as exc:
            if len(args.files) == 1:
                raise
            failures.append({"case": case, "file": str(file), "error": str(exc)})
            continue
        (got,) = result["settings"]["cases"]  # the single-file run names the case by file name
        case_settings = result["settings"]["cases"][got]
        failures += [
            {"case": case, "file": str(file), "method": name, "error": error}
            for name, error in case_settings.get("method_errors", {}).items()
        ]
        result["cases"].setdefault(got, {})
        if merged is None:
            merged = {"cases": {}, "settings": {**result["settings"], "cases": {}}}
        merged["cases"][case] = result["cases"][got]
        merged["settings"]["cases"][case] = case_settings
    if merged is None:
        raise MriViewerError(
            "every case failed: " + "; ".join(f"{f['case']}: {f['error']}" for f in failures)
        )
    for failure in (f for f in failures if "method" not in f):
        merged["settings"]["cases"][failure["case"]] = {
            "file": failure["file"],
            "error": failure["error"],
        }
    merged["failures"] = failures
    return merged


def _refuse_cine_models(methods: str) -> None:
    """2-D files: a cine model in ``--methods`` is refused before any case is read."""
    from mriviewer.core.checkpoints import cine_models

    cine = cine_models([m.strip() for m in methods.split(",") if m.strip()])
    if cine:
        raise ConfigError(
            f"{', '.join(cine)}: cine model(s) (denoiser over time) reconstruct cine files "
            "(e.g. demo-cine), not the 2-D files given"
        )


def evaluate_files(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark the options describe; returns the JSON-ready result (the first failure
    raises; :func:`evaluate_each` records failures per file instead)."""
    from mriviewer.commands.eval_cine import all_cine, evaluate_cine_files
    from mriviewer.core.compare import final_record, get_method, prepare_from_volume, scalar_extra
    from mriviewer.core.images import center_crop
    from mriviewer.core.io import open_kspace
    from mriviewer.core.metrics import all_metrics
    from mriviewer.core.reference import describe_reference

    if all_cine(args.files, getattr(args, "axes", None)):  # 2-D + time: the k-t branch
        return evaluate_cine_files(args, DEFAULT_METHODS, _case_names(args.files))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ConfigError("--methods names no method")
    _refuse_cine_models(args.methods)
    if len(set(methods)) != len(methods):
        raise ConfigError(f"--methods lists a method twice: {args.methods}")
    if args.mask == "data":
        raise ConfigError("eval undersamples fully sampled data: --mask data is not allowed")
    device = resolve_device(args.device)
    built = {m: get_method(m, **method_options(args.method_option, m)) for m in methods}
    cases: dict[str, dict[str, dict[str, float]]] = {}
    per_case: dict[str, dict[str, Any]] = {}
    for file, case in zip(args.files, _case_names(args.files), strict=True):
        volume = open_kspace(file, **reader_options(args))
        slices = parse_slices(args.slices, volume.num_slices)
        refs: list[np.ndarray] = []
        preds: dict[str, list[np.ndarray]] = {m: [] for m in methods}
        seconds = dict.fromkeys(methods, 0.0)
        accelerations = []
        regions: list[np.ndarray | None] = []
        warnings: list[str] = []
        method_errors: dict[str, str] = {}
        resolved: dict[str, dict[str, Any]] = {}
        for index in slices:
            kspace = volume.read_kspace(index)
            band = acquired_band(kspace, volume.header)
            _check_fully_sampled(kspace, volume.path, index, band)
            mask = mask_from_args(args, volume.matrix, file, index, band=band)
            accelerations.append(mask.achieved_acceleration)
            problem = prepare_from_volume(
                volume, mask, index, fully_sampled=True, **problem_options(args)
            )
            refs.append(problem.reference)
            regions.append(problem.foreground)
            warnings.extend(f"slice {index}: {w}" for w in problem.warnings)
            warnings.extend(f"slice {index}: {w}" for w in (*band.warnings, *mask.warnings))
            for method in built.values():  # a model outside its training R: said once a case
                note = model_acceleration_warning(method, mask.achieved_acceleration)
                if note and note.split(": outside")[0] not in " ".join(warnings):
                    warnings.append(note)
            for name, method in built.items():
                if name in method_errors:
                    continue
                start = time.perf_counter()
                try:
                    last = final_record(method, problem, device, metrics=False)
                except ReconError as exc:  # e.g. refused for want of calibration data: the
                    # other methods of the case are still evaluated, this one is recorded
                    method_errors[name] = f"{volume.path.name}: slice {index}: {exc}"
                    continue
                seconds[name] += time.perf_counter() - start
                preds[name].append(center_crop(np.abs(last.image), problem.reference.shape))
                if scalar_extra(last.extra):  # what an "auto" setting became (last slice's)
                    resolved[name] = scalar_extra(last.extra)
        ref = np.stack(refs)
        region = np.stack(regions) if args.metrics_region == "foreground" else None
        cases[case] = {}
        for name in methods:
            if name in method_errors:
                continue
            metrics = all_metrics(ref, np.stack(preds[name]), region=region)
            cases[case][name] = {
                "psnr": metrics["psnr"],
                "ssim": metrics["ssim"],
                "nmse": metrics["nmse"],
                "seconds": seconds[name],
            }
        per_case[case] = {
            "file": str(volume.path),
            "slices": slices,
            "achieved_acceleration": float(np.mean(accelerations)),
            "warnings": warnings,
            "method_errors": method_errors,
            "resolved": resolved,
        }
    settings = {
        "methods": methods,
        "method_settings": {m: built[m].settings() for m in methods},
        "mask": args.mask,
        "accel": accel_of(args),
        "center_fraction": args.center_fraction,
        "calib": args.calib,
        "seed": args.seed if args.seed is not None else "stable_seed(file name, slice)",
        "slices": args.slices,
        "coil_method": args.coil_method,
        "virtual_coils": args.virtual_coils,
        "reference": args.reference,
        "reference_definition": describe_reference(args.reference, args.metrics_region),
        "metrics_region": args.metrics_region,
        "device": device,
        "cases": per_case,
        "metrics": METRIC_DEFINITION,
        "mriviewer_version": __version__,
    }
    return {"cases": cases, "settings": settings}


def format_table(result: dict[str, Any]) -> str:
    """The printed table: one row per case and method (a case without ground truth, an
    undersampled cine file, shows its data-consistency residual instead of PSNR/SSIM/NMSE)."""
    gt_free = any("psnr" not in m for ms in result["cases"].values() for m in ms.values())
    rows = [("case", "method", "PSNR dB", "SSIM", "NMSE", "seconds", "R")]
    if gt_free:
        rows[0] += ("DC residual",)
    for case, methods in result["cases"].items():
        accel = result["settings"]["cases"][case]["achieved_acceleration"]
        for name, m in methods.items():
            row = (
                case,
                name,
                f"{m['psnr']:.2f}" if "psnr" in m else "-",
                f"{m['ssim']:.4f}" if "ssim" in m else "-",
                f"{m['nmse']:.5f}" if "nmse" in m else "-",
                f"{m['seconds']:.2f}",
                f"{accel:.2f}",
            )
            if gt_free:
                row += (f"{m['dc_residual']:.4f}" if "dc_residual" in m else "-",)
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        result = evaluate_each(args)
    except MriViewerError as exc:
        if args.json_out:  # the failure is recorded, as for any failed case
            from mriviewer.core.io.atomic import atomic_write_text

            failed = {"case": _case_names(args.files)[0], "file": args.files[0], "error": str(exc)}
            record = {"cases": {}, "settings": {"cases": {}}, "failures": [failed]}
            atomic_write_text(args.json_out, json.dumps(record, indent=2) + "\n")
        raise
    settings = result["settings"]
    print(settings["reference_definition"])
    if settings.get("virtual_coils"):
        print(
            f"coil compression: every case with more coils compressed to "
            f"{settings['virtual_coils']} virtual coils (SVD over coils) before coil maps"
        )
    for case, info in settings["cases"].items():
        for warning in info.get("warnings", []):
            print(f"warning: {case}: {warning}", file=sys.stderr)
    print(format_table(result))
    notes = {
        f"{name}: {key}={value}"
        for info in settings["cases"].values()
        for name, values in (info.get("resolved") or {}).items()
        for key, value in values.items()
        if settings["method_settings"].get(name, {}).get(key) == "auto"
    }
    for note in sorted(notes):
        print(f"{note.replace('=', ' auto resolved to ', 1)}")
    if args.json_out:
        from mriviewer.core.io.atomic import atomic_write_text

        atomic_write_text(args.json_out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json_out}")
    for failure in result.get("failures", []):
        where = f"{failure['case']}: " if failure["case"] not in failure["error"] else ""
        print(f"mriviewer eval: failed: {where}{failure['error']}", file=sys.stderr)
    return 1 if result.get("failures") else 0
