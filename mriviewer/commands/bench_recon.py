"""``mriviewer bench recon``: seconds and achieved GFLOP/s of each reconstruction stage.

Stages: coil maps (ESPIRiT), one CG-SENSE iteration, one l1-wavelet (FISTA) iteration, a MoDL
forward pass and a MoDL training step (N=4, 16 features, 10 CG iterations). FLOPs follow the
cost model of SCIENCE.md (``5 N log2 N`` per 2-D FFT of every coil, ``2 * 9 * F_in * F_out``
per pixel per 3x3 conv, 6 per complex product); "vs torch" is the stage's time over the time
torch's own FFT and conv need for those FLOPs on the same arrays (1.00x = at torch's rates).
``--before`` times the roll-based operator of before issue 14 alongside, ``--compare sigpy``
sigpy's SenseRecon / L1WaveletRecon / EspiritCalib on the same inputs, ``--neighbour`` the
slow-down of CG and MoDL while a busy-loop process keeps one core busy. Every comparison is
measured in the same run, alternating; each figure is the best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mriviewer.core.errors import ConfigError

CASES = ("demo", "fastmri", "tiny")
STAGES = ("maps", "cg", "l1", "modl", "train")
STAGE_NAMES = {
    "maps": "coil maps",
    "cg": "CG iteration",
    "l1": "l1 iteration",
    "modl": "MoDL pass",
    "train": "training step",
}
MODL = {"num_unrolls": 4, "features": 16, "depth": 5, "cg_iters": 10, "cg_tol": 0.0}
LAMDA = 0.01


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "recon",
        help="seconds and GFLOP/s per reconstruction stage (vs torch FFT/conv, sigpy)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--case",
        default="demo,fastmri",
        help="comma list of cases: demo (the bundled case), fastmri (16 coils 640 x 320 "
        "simulated in memory), tiny (4 coils 64 x 48); default demo,fastmri",
    )
    parser.add_argument(
        "--stages", default=",".join(STAGES), help="comma list of " + ", ".join(STAGES)
    )
    parser.add_argument("--compare", default="", help="sigpy: time sigpy on the same inputs")
    parser.add_argument(
        "--before", action="store_true", help="also time the roll-based operator of before issue 14"
    )
    parser.add_argument(
        "--neighbour",
        action="store_true",
        help="CG, a MoDL pass and a training step quiet and beside a busy-loop process on one "
        "core (each run picks its threads from the free cores unless --threads fixes them)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of N (default 3)")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: the free cores, as every mriviewer command picks them)",
    )
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    parser.set_defaults(func=run)


# -- cases ----------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    kspace: np.ndarray  # (C, H, W) complex64, masked, normalised
    mask: np.ndarray  # (H, W) bool
    calib: Any
    maps: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.kspace.shape)  # type: ignore[return-value]


def build_case(name: str) -> Case:
    """Undersampled, normalised k-space of a case with a 1-D random mask (R 4, cf 0.08)."""
    from mriviewer.core.compare import kspace_scale
    from mriviewer.core.physics.coils import auto_calibration
    from mriviewer.core.physics.masks import MaskSpec, SamplingMask, make_mask

    if name == "demo":
        from mriviewer.core.io import open_kspace

        full = open_kspace("demo").kspace
    elif name in ("fastmri", "tiny"):
        full = _simulated(16, (640, 320)) if name == "fastmri" else _simulated(4, (64, 48))
    else:
        raise ConfigError(f"unknown case {name!r}; choose from {', '.join(CASES)}")
    mask = make_mask(MaskSpec("random", 4.0, 0.08, seed=0), full.shape[-2:]).array
    under = (full * mask[None]).astype(np.complex64)
    under /= np.float32(kspace_scale(under))
    calib = auto_calibration(SamplingMask(mask).acs_size())
    return Case(name, under, mask, calib)


def _simulated(coils: int, shape: tuple[int, int]) -> np.ndarray:
    """Fully sampled k-space of a Shepp-Logan phantom with a smooth phase and birdcage coils."""
    import sigpy

    from mriviewer.core.physics.fft import fft2c_np
    from mriviewer.core.simulate import coil_maps

    image = np.abs(sigpy.shepp_logan(shape)).astype(np.float32)
    yy, xx = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    image = image * np.exp(1j * np.pi / 3 * (xx + 0.5 * yy))
    maps = coil_maps(coils, shape)
    rng = np.random.default_rng(0)
    kspace = fft2c_np(maps * image[None]).astype(np.complex64)
    noise = rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)
    return (kspace + 1e-3 * np.abs(kspace).max() * noise).astype(np.complex64)


# -- timing ---------------------------------------------------------------------------------
def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall-clock seconds of ``repeats`` calls (after one warm-up call)."""
    return alternate({"fn": fn}, repeats)["fn"]


def alternate(
    fns: dict[str, Callable[[], Any]], repeats: int, warm_up: bool = True
) -> dict[str, float]:
    """Best seconds of each callable, called in turn ``repeats`` times (after a warm-up each):
    the variants of a comparison see the same load."""
    for fn in fns.values() if warm_up else ():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(max(1, repeats)):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - start)
    return best


K1, K2 = 1, 6


def iteration_variants(label: str, run_k: Callable[[int], Any]) -> dict[str, Callable[[], Any]]:
    """Runs of ``K1`` and ``K2`` iterations, for :func:`per_iteration`."""
    return {f"{label}@{K1}": lambda: run_k(K1), f"{label}@{K2}": lambda: run_k(K2)}


def per_iteration(times: dict[str, float], label: str) -> float:
    """Seconds per iteration ``(T(K2) - T(K1)) / (K2 - K1)``: the setup cancels."""
    return max(times[f"{label}@{K2}"] - times[f"{label}@{K1}"], 1e-9) / (K2 - K1)


def fft_flops(pixels: int) -> float:
    from mriviewer.core.pruning.accounting import fft_flops as flops

    return flops(pixels)


class Rates:
    """torch's own FFT and conv rates on this case's arrays (GFLOP/s), the best seen: every
    stage times them again alongside its own runs."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        import torch

        c, h, w = shape
        self.shape = shape
        self._x = torch.randn(c, h, w, dtype=torch.complex64)
        f = MODL["features"]
        self._conv = torch.nn.Conv2d(f, f, 3, padding=1)
        self._image = torch.randn(1, f, h, w)
        self.fft_pair_seconds = float("inf")
        self.conv_seconds = float("inf")

    def variants(self) -> dict[str, Callable[[], Any]]:
        import torch

        def fft_pair():
            torch.fft.ifft2(torch.fft.fft2(self._x, norm="ortho"), norm="ortho")

        def conv():
            with torch.no_grad():
                self._conv(self._image)

        return {"torch fft": fft_pair, "torch conv": conv}

    def update(self, times: dict[str, float]) -> None:
        self.fft_pair_seconds = min(self.fft_pair_seconds, times["torch fft"])
        self.conv_seconds = min(self.conv_seconds, times["torch conv"])

    @property
    def fft(self) -> float:
        c, h, w = self.shape
        return 2 * c * fft_flops(h * w) / self.fft_pair_seconds / 1e9

    @property
    def conv(self) -> float:
        _, h, w = self.shape
        f = MODL["features"]
        return 2 * 9 * f * f * h * w / self.conv_seconds / 1e9

    def ideal(self, fft: float, conv: float = 0.0) -> float:
        """Seconds torch needs for ``fft`` FFT FLOPs and ``conv`` conv FLOPs at its rates."""
        return fft / (self.fft * 1e9) + conv / (self.conv * 1e9)


# -- stages ---------------------------------------------------------------------------------
def _torch_inputs(case: Case):
    import torch

    kspace = torch.from_numpy(case.kspace)[None]
    maps = torch.from_numpy(case.maps)[None]
    mask = torch.from_numpy(case.mask)[None]
    return kspace, maps, mask


def normal_flops(case: Case) -> float:
    """One SENSE normal operator: 2 FFTs per coil and 3 complex products per coil pixel."""
    c, h, w = case.shape
    return 2 * c * fft_flops(h * w) + 3 * c * h * w * 6


def stage_maps(case: Case, args, rates: Rates) -> dict[str, Any]:
    from mriviewer.core.physics.coils import clear_memory_cache, estimate_coil_maps

    def ours():
        clear_memory_cache()
        return estimate_coil_maps(case.kspace, calib=case.calib)

    variants = {"ours": ours}
    width = case.calib if isinstance(case.calib, int) else max(case.calib)
    if "sigpy" in args.compare:
        import sigpy.mri

        def theirs():
            return sigpy.mri.app.EspiritCalib(case.kspace, calib_width=width, show_pbar=False).run()

        variants["sigpy"] = theirs
    times = alternate(variants, max(1, args.repeats - 1), warm_up=False)
    case.maps = ours()
    row: dict[str, Any] = {"seconds": times["ours"], "note": f"ESPIRiT calib {case.calib}"}
    if "sigpy" in times:
        row["sigpy_seconds"] = times["sigpy"]
        row["note"] += f", sigpy EspiritCalib calib {width}"
    return row


def _cg_runner(op_cls, case: Case) -> Callable[[int], Any]:
    import torch

    from mriviewer.core.physics.cg import conjugate_gradient

    kspace, maps, mask = _torch_inputs(case)

    def run_k(k: int):
        with torch.no_grad():
            op = op_cls(maps, mask)
            return conjugate_gradient(op.normal, op.adjoint(kspace), LAMDA, max_iter=k, tol=0)

    return run_k


def _sigpy_sense(case: Case, k: int) -> np.ndarray:
    import sigpy.mri

    weights = case.mask.astype(np.float32)
    return sigpy.mri.app.SenseRecon(
        case.kspace, case.maps, lamda=LAMDA, weights=weights, max_iter=k, show_pbar=False
    ).run()


def _sigpy_l1(case: Case, k: int) -> np.ndarray:
    import sigpy.mri

    weights = case.mask.astype(np.float32)
    return sigpy.mri.app.L1WaveletRecon(
        case.kspace, case.maps, 0.002, weights=weights, max_iter=k, show_pbar=False
    ).run()


def stage_cg(case: Case, args, rates: Rates) -> dict[str, Any]:
    from mriviewer.core.physics.sense import ReferenceSenseOperator, SenseOperator

    c, h, w = case.shape
    ours = _cg_runner(SenseOperator, case)
    variants = {**rates.variants(), **iteration_variants("ours", ours)}
    if args.before:
        variants.update(iteration_variants("before", _cg_runner(ReferenceSenseOperator, case)))
    if "sigpy" in args.compare:
        variants.update(iteration_variants("sigpy", lambda k: _sigpy_sense(case, k)))
    times = alternate(variants, args.repeats)
    rates.update(times)
    row: dict[str, Any] = {
        "seconds": per_iteration(times, "ours"),
        "flops": normal_flops(case) + 5 * h * w * 8,
        "ideal_seconds": rates.ideal(2 * c * fft_flops(h * w)),
    }
    if args.before:
        row["before_seconds"] = per_iteration(times, "before")
    if "sigpy" in args.compare:
        row["sigpy_seconds"] = per_iteration(times, "sigpy")
        a, b = ours(8)[0].numpy(), _sigpy_sense(case, 8)
        row["note"] = f"8 its vs sigpy: nRMSE {np.linalg.norm(a - b) / np.linalg.norm(b):.1e}"
    return row


def stage_l1(case: Case, args, rates: Rates) -> dict[str, Any]:
    from mriviewer.core.recon.base import ReconProblem
    from mriviewer.core.recon.l1_wavelet import L1Wavelet

    c, h, w = case.shape
    problem = ReconProblem(kspace=case.kspace, mask=case.mask, coil_maps=case.maps)

    def ours(k: int):
        for _ in L1Wavelet(max_iter=k).iterate(problem):
            pass

    variants = {**rates.variants(), **iteration_variants("ours", ours)}
    if "sigpy" in args.compare:
        variants.update(iteration_variants("sigpy", lambda k: _sigpy_l1(case, k)))
    times = alternate(variants, args.repeats)
    rates.update(times)
    row: dict[str, Any] = {
        "seconds": per_iteration(times, "ours"),
        "flops": normal_flops(case),
        "ideal_seconds": rates.ideal(2 * c * fft_flops(h * w)),
        "note": "sigpy's FISTA inside (data-term FLOPs only)",
    }
    if "sigpy" in args.compare:
        row["sigpy_seconds"] = per_iteration(times, "sigpy")
    return row


def _modl(case: Case, train: bool, operator=None):
    """A MoDL pass (or Adam training step) as a callable; ``operator`` replaces SenseOperator."""
    import torch

    import mriviewer.core.models.unrolled as unrolled

    torch.manual_seed(0)
    model = unrolled.MoDL(shared=False, **MODL)
    optimiser = torch.optim.Adam(model.parameters(), 1e-4)
    kspace, maps, mask = _torch_inputs(case)
    target = torch.randn(case.shape[1:], dtype=torch.complex64)[None]

    def step():
        saved = unrolled.SenseOperator
        if operator is not None:
            unrolled.SenseOperator = operator
        try:
            if not train:
                with torch.no_grad():
                    return model(kspace, maps, mask)
            optimiser.zero_grad()
            loss = (model(kspace, maps, mask) - target).abs().pow(2).mean()
            loss.backward()
            optimiser.step()
            return loss
        finally:
            unrolled.SenseOperator = saved

    return model, step


def modl_flops(case: Case, model) -> tuple[float, float]:
    """(FFT FLOPs, conv FLOPs) of one MoDL forward pass."""
    from mriviewer.core.pruning.accounting import conv_macs

    c, h, w = case.shape
    n, iters = model.num_unrolls, model.cg_iters
    convs = 2.0 * conv_macs(model, h, w)["dense"]
    ffts = (n * iters + 1) * 2 * c * fft_flops(h * w)
    return ffts, convs


def _stage_modl(case: Case, args, rates: Rates, train: bool) -> dict[str, Any]:
    from mriviewer.core.physics.sense import ReferenceSenseOperator

    model, step = _modl(case, train)
    variants = {**rates.variants(), "ours": step}
    if args.before:
        variants["before"] = _modl(case, train, ReferenceSenseOperator)[1]
    times = alternate(variants, args.repeats)
    rates.update(times)
    ffts, convs = modl_flops(case, model)
    factor = 3.0 if train else 1.0  # backward: twice the forward's convs and normal operators
    row: dict[str, Any] = {
        "seconds": times["ours"],
        "flops": factor * (ffts + convs),
        "ideal_seconds": factor * rates.ideal(ffts, convs),
        "note": "N=4, 16 features, 10 CG its" + (", Adam" if train else ""),
    }
    if args.before:
        row["before_seconds"] = times["before"]
    return row


def stage_modl(case: Case, args, rates: Rates) -> dict[str, Any]:
    return _stage_modl(case, args, rates, train=False)


def stage_train(case: Case, args, rates: Rates) -> dict[str, Any]:
    return _stage_modl(case, args, rates, train=True)


STAGE_FUNCS = {
    "maps": stage_maps,
    "cg": stage_cg,
    "l1": stage_l1,
    "modl": stage_modl,
    "train": stage_train,
}


# -- neighbour ------------------------------------------------------------------------------
def start_neighbour() -> subprocess.Popen:
    """A busy-loop process (one core)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def neighbour_rows(case: Case, args) -> list[dict[str, Any]]:
    """CG (10 iterations) and a MoDL pass, quiet and loaded, alternating; best of each. Each
    run first picks its threads as the app's compute process does for every request
    (:func:`mriviewer.core.threads.pick_threads`) unless ``--threads`` fixed them."""
    import torch

    from mriviewer.core.physics.sense import SenseOperator
    from mriviewer.core.threads import pick_threads

    cg = _cg_runner(SenseOperator, case)
    work = {
        "CG-SENSE 10 its": lambda: cg(10),
        "MoDL pass": _modl(case, False)[1],
        "training step": _modl(case, True)[1],
    }
    fixed = torch.get_num_threads()

    def timed(fn) -> tuple[float, int]:
        threads = fixed if args.threads else pick_threads()
        torch.set_num_threads(threads)
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start, threads

    rows = []
    for name, fn in work.items():
        fn()
        quiet, loaded = (float("inf"), 0), (float("inf"), 0)
        for _ in range(max(1, args.repeats)):
            quiet = min(quiet, timed(fn))
            neighbour = start_neighbour()
            try:
                time.sleep(0.2)
                loaded = min(loaded, timed(fn))
            finally:
                neighbour.kill()
                neighbour.wait()
        rows.append(
            {
                "work": name,
                "quiet_seconds": quiet[0],
                "quiet_threads": quiet[1],
                "loaded_seconds": loaded[0],
                "loaded_threads": loaded[1],
            }
        )
    torch.set_num_threads(fixed)
    return rows


# -- output ---------------------------------------------------------------------------------
def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if value < 1 else f"{value:.2f}"


def format_case(result: dict[str, Any]) -> str:
    lines = [result["header"], result["rates_line"]]
    lines.append(
        f"{'stage':<14} {'seconds':>9} {'GFLOP/s':>8} {'vs torch':>9} {'before':>9} "
        f"{'speed-up':>9} {'sigpy':>9} {'sigpy/ours':>11}  note"
    )
    for key, row in result["stages"].items():
        s = row["seconds"]
        gflops = f"{row['flops'] / s / 1e9:.2f}" if row.get("flops") else "-"
        vs = f"{s / row['ideal_seconds']:.2f}x" if row.get("ideal_seconds") else "-"
        before = row.get("before_seconds")
        sigpy = row.get("sigpy_seconds")
        lines.append(
            f"{STAGE_NAMES[key]:<14} {_fmt_seconds(s):>9} {gflops:>8} {vs:>9} "
            f"{_fmt_seconds(before):>9} {(f'{before / s:.2f}x' if before else '-'):>9} "
            f"{_fmt_seconds(sigpy):>9} {(f'{sigpy / s:.2f}x' if sigpy else '-'):>11}  "
            f"{row.get('note', '')}"
        )
    for row in result.get("neighbour", []):
        lines.append(
            f"busy neighbour: {row['work']:<16} quiet {_fmt_seconds(row['quiet_seconds'])} s "
            f"({_threads(row['quiet_threads'])}), loaded {_fmt_seconds(row['loaded_seconds'])} s "
            f"({_threads(row['loaded_threads'])}): "
            f"{row['loaded_seconds'] / row['quiet_seconds']:.2f}x"
        )
    return "\n".join(lines)


def bench_case(name: str, stages: list[str], args) -> dict[str, Any]:
    import torch

    from mriviewer.core.allocator import malloc_description

    case = build_case(name)
    c, h, w = case.shape
    rates = Rates(case.shape)
    rates.update(alternate(rates.variants(), args.repeats))
    result: dict[str, Any] = {
        "case": name,
        "header": (
            f"case {name}: {c} coils {h} x {w}, 1-D random mask R 4 cf 0.08, calib "
            f"{case.calib}; torch {torch.__version__}, {_threads(torch.get_num_threads())}, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} "
            f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '(unset)')}, {malloc_description()}"
        ),
        "stages": {},
    }
    if "maps" not in stages or case.maps is None:
        from mriviewer.core.physics.coils import estimate_coil_maps

        case.maps = estimate_coil_maps(case.kspace, calib=case.calib)
    for key in stages:
        result["stages"][key] = STAGE_FUNCS[key](case, args, rates)
    if args.neighbour:
        result["neighbour"] = neighbour_rows(case, args)
    result["rates"] = {"fft_gflops": rates.fft, "conv_gflops": rates.conv}
    result["rates_line"] = (
        f"torch on these arrays (best seen): 2-D FFT {rates.fft:.2f} GFLOP/s (fft2+ifft2 of "
        f"{c} x {h} x {w}: {rates.fft_pair_seconds:.4f} s), 3x3 conv {MODL['features']}->"
        f"{MODL['features']} {rates.conv:.2f} GFLOP/s"
    )
    return result


def run(args: argparse.Namespace) -> int:
    cases = [c.strip() for c in args.case.split(",") if c.strip()]
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    for name in cases:
        if name not in CASES:
            raise ConfigError(f"unknown case {name!r}; choose from {', '.join(CASES)}")
    for key in stages:
        if key not in STAGES:
            raise ConfigError(f"unknown stage {key!r}; choose from {', '.join(STAGES)}")
    if args.compare not in ("", "sigpy"):
        raise ConfigError(f"--compare takes sigpy, got {args.compare!r}")
    if args.repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {args.repeats}")
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    results = []
    for name in cases:
        result = bench_case(name, stages, args)
        results.append(result)
        print(format_case(result), flush=True)
        print()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2, default=float)
    return 0
