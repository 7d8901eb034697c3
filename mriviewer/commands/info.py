"""``mriviewer info FILE [--json]``: what a k-space file (or a model) holds.

FILE is any readable k-space file or ``demo``. A model target (``model:NAME``, a
``.safetensors`` file or a folder holding a model card) is described by
``mriviewer.core.checkpoints.describe_model`` instead.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from mriviewer.commands.common import add_reader_arguments, reader_options
from mriviewer.core.io import open_kspace

MODEL_CARD_NAMES = ("model_card.json", "modelcard.json", "card.json")
# Header facts worth a line in the human output, in this order, with their labels.
HEADER_LINES = (
    ("variable", "variable"),
    ("sequence", "sequence"),
    ("system", "system"),
    ("field_strength_t", "field strength (T)"),
    ("acceleration", "acceleration"),
    ("axes", "array axes"),
    ("bart_named_dims", "BART dims"),
    ("bart_layout", "BART layout"),
    ("twix_dims", "TWIX dims"),
    ("skipped_acquisitions", "skipped acquisitions"),
    ("calibration_lines", "calibration lines"),
    ("single_coil", "single coil"),
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "info",
        help="describe a k-space file (format, slices, coils, matrix) or a model",
        description="Describe a k-space file (any supported format, or 'demo'): format, slices, "
        "coils, matrix, recon matrix, acquisition, whether a reference is present. "
        "model:NAME, a .safetensors file or a folder with a model card describes a model.",
    )
    parser.add_argument("file", metavar="FILE", help="k-space file, 'demo', or a model target")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_reader_arguments(parser)
    parser.set_defaults(func=run)


def is_model_target(target: str) -> bool:
    """``model:NAME``, a ``.safetensors`` file, or a folder holding a model card / weights."""
    if target.startswith("model:") or target.endswith(".safetensors"):
        return True
    path = Path(target)
    if not path.is_dir():
        return False
    return any((path / name).is_file() for name in MODEL_CARD_NAMES) or any(
        path.glob("*.safetensors")
    )


def describe_file(
    target: str,
    variable: str | None = None,
    axes: str | None = None,
    encoding: int | None = None,
    prewhiten: bool = True,
) -> dict:
    """The JSON-ready summary of a k-space file (see ``KSpaceVolume.summary``)."""
    options = {
        k: v
        for k, v in (("variable", variable), ("axes", axes), ("encoding", encoding))
        if v is not None
    }
    volume = open_kspace(target, prewhiten=prewhiten, **options)
    info = volume.summary()
    info["acquired_band"] = band_summary(volume)
    info["sampling"] = sampling_summary(volume)
    return info


def sampling_summary(volume: Any) -> dict[str, Any]:
    """The data's own sampling of slice 0 (``SamplingInfo.to_dict``: fully sampled or not, R of
    the full grid, ACS), or ``{"error": line}`` when slice 0 cannot be read."""
    from mriviewer.core.errors import MriViewerError
    from mriviewer.core.physics.sampling import detect_sampling

    try:
        return detect_sampling(volume.read_kspace(0)).to_dict()
    except MriViewerError as exc:
        return {"error": f"slice 0 unreadable ({exc.problem})"}


def sampling_text(sampling: dict[str, Any]) -> str:
    """One line for :func:`sampling_summary`."""
    if "error" in sampling:
        return f"unknown: {sampling['error']}"
    if sampling["fully_sampled"]:
        return "fully sampled (slice 0)"
    acs = sampling["acs"]
    floor = ", unsampled points hold a noise-only floor" if sampling.get("noise_floor") else ""
    return (
        f"undersampled (slice 0): R {sampling['acceleration']:.2f} of the full grid, ACS "
        f"{acs[0]} x {acs[1]}{floor}; no ground truth unless the file stores a reference"
    )


def reference_text(info: dict[str, Any]) -> str:
    """Whether metrics can have a reference, and where it comes from."""
    if info["reference"]:
        return "yes (stored in the file)"
    if info.get("sampling", {}).get("fully_sampled", True):
        return "none stored; computed from the fully sampled k-space (--reference rss|sense)"
    return "no (k-space undersampled: no ground truth, no PSNR)"


def band_summary(volume: Any) -> dict[str, Any]:
    """The acquired phase-encode band of slice 0 (``AcquiredBand.to_dict``: zero-padded fastMRI
    columns lie outside it), or ``{"error": line}`` when slice 0 cannot be read."""
    from mriviewer.core.errors import MriViewerError
    from mriviewer.core.physics.band import acquired_band

    try:
        kspace = volume.read_kspace(0)
    except MriViewerError as exc:
        return {"error": f"slice 0 unreadable ({exc.problem})"}
    return acquired_band(kspace, volume.header).to_dict()


def band_text(band: dict[str, Any]) -> str:
    """One line for :func:`band_summary`'s dict, e.g. ``columns 8-87 (80 of 96; ...)``."""
    from mriviewer.core.physics.band import AcquiredBand

    if "error" in band:
        return f"unknown: {band['error']}"
    text = AcquiredBand(band["start"], band["stop"], band["width"], band["source"]).describe()
    return "; ".join([text, *band.get("warnings", [])])


def run(args: argparse.Namespace) -> int:
    if is_model_target(args.file):
        from mriviewer.core.checkpoints import describe_model

        info = describe_model(args.file)
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            print(format_nested(info))
        return 0
    options = reader_options(args)
    from mriviewer.core.io.cine import is_cine

    if is_cine(args.file, options.get("axes")):  # 2-D + time (demo-cine, BART TIME > 1, ...)
        return _run_cine(args, options.get("axes"), options.get("variable"))
    info = describe_file(args.file, **options)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_lines(human_lines(info)))
    return 0


def _run_cine(args: argparse.Namespace, axes: str | None, variable: str | None = None) -> int:
    """``info`` of a cine file: :meth:`CineVolume.summary` (JSON) or its main lines."""
    from mriviewer.core.io.cine import open_cine

    info = open_cine(args.file, axes=axes, variable=variable).summary()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    h, w = info["matrix"]
    simulation = info["header"].get("simulation")
    lines = [
        ("file", info["path"]),
        ("format", f"{info['format']} (cine, 2-D + time)"),
        ("slices", str(info["slices"])),
        ("frames", str(info["frames"])),
        ("coils", str(info["coils"])),
        ("matrix", f"{h} x {w} (H x W, phase-encode along W)"),
        ("reference", "RSS per frame" if info["reference"] else "none"),
        ("k-t mask", "stored in the file" if info["mask"] else "none stored"),
    ]
    if isinstance(simulation, dict):
        lines.append(("simulation", simulation.get("generator", "yes")))
    print(format_lines(lines))
    return 0


def human_lines(info: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, value)`` lines for the text output of a k-space summary."""
    h, w = info["matrix"]
    rh, rw = info["recon_matrix"]
    lines = [
        ("file", info["path"]),
        ("format", info["format"]),
        ("slices", str(info["slices"])),
        ("coils", str(info["coils"])),
        ("matrix", f"{h} x {w} (H x W, phase-encode along W)"),
        ("recon matrix", f"{rh} x {rw}"),
        ("acquisition", info.get("acquisition") or "unknown"),
        ("reference", reference_text(info)),
    ]
    if "sampling" in info:
        lines.append(("sampling", sampling_text(info["sampling"])))
    if "acquired_band" in info:
        lines.append(("acquired band", band_text(info["acquired_band"])))
    header = info.get("header", {})
    for key, label in HEADER_LINES:
        if key in header and header[key] not in (None, {}, []):
            lines.append((label, _text(header[key])))
    encodings = header.get("encodings") or []
    if len(encodings) > 1:
        lines.append(("encodings", encodings_text(encodings, header.get("encoding", 0))))
    if "noise" in info:
        lines.append(("noise", noise_text(info["noise"])))
    if header.get("noise_ignored"):
        lines.append(("noise data ignored", str(header["noise_ignored"])))
    return lines


def encodings_text(encodings: list[dict[str, Any]], current: int) -> str:
    """``0: 64 x 64, 64 acquisitions (read); 1: 64 x 32, 32 acquisitions``."""
    parts = []
    for e in encodings:
        size = " x ".join(str(n) for n in e.get("encoded_matrix") or []) or "size unknown"
        read = " (read)" if e["index"] == current else ""
        parts.append(f"{e['index']}: {size}, {e['acquisitions']} acquisitions{read}")
    return "; ".join(parts) + " (choose with --encoding N)"


def noise_text(noise: dict[str, Any]) -> str:
    """One line on the noise data: prewhitened or not, condition number, noise level per coil."""
    if "condition_number" not in noise:
        return f"{noise.get('reason', 'no noise data')}: not prewhitened"
    state = "prewhitened" if noise["prewhitened"] else "not prewhitened (--no-prewhiten)"
    levels = ", ".join(f"{s:.3g}" for s in noise["noise_std_per_coil"])
    samples = noise.get("samples_per_coil")
    source = f" from {samples} samples per coil" if samples else ""
    return (
        f"{state}; covariance{source}: condition number {noise['condition_number']:.3g}, "
        f"max coil correlation {noise['max_correlation']:.2f}, noise std per coil {levels}"
    )


def format_lines(lines: list[tuple[str, str]]) -> str:
    """Aligned ``key: value`` lines."""
    width = max((len(k) for k, _ in lines), default=0) + 1
    return "\n".join(f"{k + ':':<{width}} {v}" for k, v in lines)


def format_nested(info: dict[str, Any], indent: int = 0) -> str:
    """Aligned ``key: value`` lines; a non-empty dict value becomes a ``key:`` line followed by
    its own aligned lines, indented two more spaces (recursively)."""
    width = max((len(str(k)) for k in info), default=0) + 1
    pad = " " * indent
    lines = []
    for key, value in info.items():
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:")
            lines.append(format_nested(value, indent + 2))
        else:
            lines.append(f"{pad}{str(key) + ':':<{width}} {_text(value)}".rstrip())
    return "\n".join(lines)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isfinite(value):
        # six significant digits (a card's 0.030002170138888888 reads 0.0300022); large
        # values such as FLOP counts rounded to integers (--json keeps full precision)
        return f"{value:.0f}" if abs(value) >= 1e5 else f"{value:.6g}"
    return str(value)
