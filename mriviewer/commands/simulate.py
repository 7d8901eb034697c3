"""``mriviewer simulate SOURCE OUT``: multi-coil k-space from a magnitude volume."""

from __future__ import annotations

import argparse
import json
import math

from mriviewer.core.errors import ConfigError


def _matrix(text: str) -> tuple[int, int] | None:
    if text == "native":
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"matrix must be HxW (e.g. 224x192) or native: {text}"
        ) from exc
    return (h, w)


def _range(text: str) -> tuple[int, int]:
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"slice range must be START:STOP, got {text}") from exc
    return (start, stop)


def _pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 20,60), got {text}") from exc
    return (low, high)


def _list(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a comma list, got {text}") from exc

    return parse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "simulate",
        help="simulate fully sampled multi-coil k-space from a magnitude volume",
        description=(
            "Simulate multi-coil Cartesian k-space (fastMRI-layout HDF5) from a magnitude volume "
            "(NIfTI, reoriented to RAS+, or .npy): birdcage coil maps, smooth random background "
            "phase, complex Gaussian noise at the given SNR. The reference stored with each file "
            "is the RSS of the fully sampled noisy k-space (as in fastMRI). Settings and seed are "
            "recorded in each file's 'simulation' attribute (JSON)."
        ),
    )
    parser.add_argument("source", help="magnitude volume: .nii / .nii.gz / .npy")
    parser.add_argument(
        "out",
        help="output .h5 file (no --split) or output folder (with --split: OUT/NAME/*.h5)",
    )
    parser.add_argument("--orientation", choices=("axial", "coronal", "sagittal"), default="axial")
    parser.add_argument(
        "--slices",
        type=_range,
        default=None,
        metavar="START:STOP",
        help="half-open slice range to simulate (default: all slices; not with --split)",
    )
    parser.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="NAME:START:STOP",
        help="named slice range, repeatable (e.g. --split train:40:120 --split val:120:130); "
        "ranges must not overlap",
    )
    parser.add_argument(
        "--matrix",
        type=_matrix,
        default=None,
        metavar="HxW",
        help="output matrix (rows x cols); slices are centred and zero-padded (shrunk first if "
        "larger). Default: native size padded to even",
    )
    parser.add_argument("--coils", type=int, default=8, help="number of birdcage coils (8)")
    parser.add_argument(
        "--snr",
        type=float,
        default=40.0,
        help="SNR = mean noiseless RSS magnitude over the object (pixels > 10%% of max) / "
        "complex noise std per k-space sample (default 40)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (phase and noise)")
    parser.add_argument(
        "--phase-strength",
        type=float,
        default=math.pi,
        help="peak background phase in radians (pi)",
    )
    parser.add_argument(
        "--coil-radius",
        type=float,
        default=1.2,
        help="birdcage coil ring radius in units of the half field of view (1.2)",
    )
    parser.add_argument(
        "--slices-per-file",
        type=int,
        default=0,
        help="split each range into files of this many slices (0: one file per range)",
    )
    dyn = parser.add_argument_group(
        "dynamic (cine, 2-D + time)",
        "--dynamic writes a cine series per source slice (layout: kspace (slices, frames, coils, "
        "H, W), reconstruction_rss (slices, frames, h, w), attribute dynamic=true): the slice "
        "beats (a smooth periodic radial scaling of a central region) and moves with a small "
        "periodic respiratory translation; one noise level for all frames.",
    )
    dyn.add_argument("--dynamic", action="store_true", help="simulate cine series")
    dyn.add_argument("--frames", type=int, default=12, help="frames per cine series (12)")
    dyn.add_argument(
        "--beat", type=float, default=0.12, help="peak relative radial scaling of the beat (0.12)"
    )
    dyn.add_argument(
        "--breath", type=float, default=1.0, help="peak respiratory translation, pixels (1)"
    )
    aug = parser.add_argument_group(
        "data diversity (training splits only; any of these turns it on)",
        "Each source slice is simulated --repeats times, each copy with its own random draws; "
        "every file gets its own coil count and radius. The draws of every slice are recorded "
        "in the file's 'simulation' attribute.",
    )
    aug.add_argument("--flip", action="store_true", help="random up-down / left-right flips")
    aug.add_argument("--rotate", type=float, metavar="DEG", help="max rotation (uniform +-DEG)")
    aug.add_argument("--scale", type=_pair, metavar="LO,HI", help="zoom range, e.g. 0.9,1.1")
    aug.add_argument(
        "--gamma", type=_pair, metavar="LO,HI", help="intensity curve gamma range, e.g. 0.7,1.4"
    )
    aug.add_argument("--snr-range", type=_pair, metavar="LO,HI", help="SNR per slice, e.g. 20,60")
    aug.add_argument(
        "--phase-range", type=_pair, metavar="LO,HI", help="peak background phase (rad) per slice"
    )
    aug.add_argument(
        "--coil-counts",
        type=_list(int),
        metavar="C,...",
        help="coil count per file, e.g. 4,8,12,16",
    )
    aug.add_argument(
        "--coil-radii", type=_list(float), metavar="R,...", help="birdcage radius per file"
    )
    aug.add_argument("--repeats", type=int, help="copies of each source slice (1)")
    parser.set_defaults(func=run)


AUGMENT_FLAGS = (
    "flip",
    "rotate",
    "scale",
    "gamma",
    "snr_range",
    "phase_range",
    "coil_counts",
    "coil_radii",
    "repeats",
)


def augmentation_from_args(args: argparse.Namespace):
    """The :class:`Augmentation` the flags ask for, or None when none is given."""
    from mriviewer.core.simulate import Augmentation

    if not any(getattr(args, name, None) for name in AUGMENT_FLAGS):
        return None
    given = {
        "flip": bool(args.flip),
        "rotate": args.rotate,
        "scale": args.scale,
        "gamma": args.gamma,
        "snr": args.snr_range,
        "phase_strength": args.phase_range,
        "coils": args.coil_counts,
        "coil_radii": args.coil_radii,
        "repeats": args.repeats,
    }
    return Augmentation(**{k: v for k, v in given.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from mriviewer.core.simulate import SimulationSettings, parse_split, simulate

    settings = SimulationSettings(
        orientation=args.orientation,
        matrix=args.matrix,
        coils=args.coils,
        snr=args.snr,
        seed=args.seed,
        phase_strength=args.phase_strength,
        coil_radius=args.coil_radius,
        augment=augmentation_from_args(args),
    )
    splits = [parse_split(s) for s in args.split]
    if splits and args.slices is not None:
        raise ConfigError("give either --slices or --split, not both")
    if args.dynamic:
        return _run_dynamic(args, settings, splits)
    paths = simulate(
        args.source,
        args.out,
        settings,
        splits=splits or None,
        slices=args.slices,
        slices_per_file=args.slices_per_file,
    )
    import h5py

    for path in paths:
        with h5py.File(path, "r") as h5:
            record = json.loads(h5.attrs["simulation"])
            shape = h5["kspace"].shape
        sigma = record["noise_sigma"]
        noise = (
            f"noise sigma {sigma:.4g}"
            if not isinstance(sigma, list)
            else f"noise sigma {min(sigma):.4g}..{max(sigma):.4g}, coils {record['coils']} "
            f"r={record['coil_radius']:g}"
        )
        print(
            f"{path}: split {record['split']}, slices {record['slice_indices'][0]}.."
            f"{record['slice_indices'][-1]}, kspace {tuple(shape)}, {noise}"
        )
    return 0


def _run_dynamic(args: argparse.Namespace, settings, splits) -> int:
    """``--dynamic``: cine series (:mod:`mriviewer.core.simulate_cine`)."""
    from mriviewer.core.io.cine import open_cine
    from mriviewer.core.simulate_cine import Motion, simulate_cine

    if args.slices_per_file:
        raise ConfigError("--slices-per-file does not apply to --dynamic (one file per range)")
    motion = Motion(frames=args.frames, beat=args.beat, breath=args.breath)
    paths = simulate_cine(
        args.source, args.out, settings, motion, splits=splits or None, slices=args.slices
    )
    for path in paths:
        volume = open_cine(path)
        record = volume.header["simulation"]
        print(
            f"{path}: split {record['split']}, slices {record['slice_indices'][0]}.."
            f"{record['slice_indices'][-1]}, cine kspace ({volume.num_slices}, "
            f"{volume.num_frames}, {volume.num_coils}, {volume.matrix[0]}, {volume.matrix[1]}), "
            f"noise sigma {record['noise_sigma']:.4g}"
        )
    return 0
