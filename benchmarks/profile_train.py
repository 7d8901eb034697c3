"""Profile training steps of a training config and compare them with torch's FFT / conv rates.

    python benchmarks/profile_train.py --config resources/training/dense.toml \
        --train data/sim/train --variants full,crop64 --rounds 5 --threads 2 --json out.json

For every variant (``full``: the config's slices; ``cropN``: ``crop_readout = N``) the script
builds the run the config describes (model, strategy, optimisers, batch size, data settings) and
times whole training steps (sample preparation + forward + backward + optimiser step, as
``mriviewer train`` runs them), the variants alternating round by round so that they see the
same machine load. It then runs one step of each under ``torch.profiler`` (the operators taking
the most time) and reports achieved GFLOP/s against the rates torch reaches on this machine for
plain 2-D FFTs and 3x3 convs of the same sizes (:mod:`mriviewer.commands.bench_recon`'s cost
model: ``5 N log2 N`` per FFT, ``2 * 9 * F_in * F_out`` per pixel per conv; a training step
counts 3x the forward convs (input and weight gradients) and 2x the forward FFTs (the backward
of a linear operator is its adjoint)).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mriviewer.commands.bench_recon import alternate, fft_flops  # noqa: E402
from mriviewer.core.physics.masks import stable_seed  # noqa: E402
from mriviewer.core.pruning.accounting import conv_macs  # noqa: E402
from mriviewer.core.training import Trainer, collate, load_config, train_step  # noqa: E402


def build(config_path: str, train_dir: str, crop: int | None, args, out: Path) -> Trainer:
    overrides = {
        "train_dir": train_dir,
        "val_dir": train_dir,  # never used: no validation here
        "output": str(out),
        "crop_readout": crop if crop else 0,
        "steps": 10**6,
        "progress": False,
        "threads": args.threads,
        "device": args.device,
        "batch_size": args.batch_size,
        "model.num_unrolls": args.unrolls,
        "model.features": args.features,
    }
    config = load_config(config_path, overrides)
    config.prune = None  # the pruning mask search is not a training step
    return Trainer(config)


class Variant:
    """One setting's training step as a callable (the step counter advances per call)."""

    def __init__(self, name: str, trainer: Trainer) -> None:
        self.name = name
        self.trainer = trainer
        self.step = 0
        self.prep_seconds: list[float] = []
        self.step_seconds: list[float] = []
        self.shape: tuple[int, ...] = ()

    def batch(self, step: int):
        t, c = self.trainer, self.trainer.config
        samples = [
            t.train_data.sample(i, stable_seed("mask", c.seed, step, j))
            for j, i in enumerate(t.batch_indices(step))
        ]
        return collate(samples).to(t.device)

    def __call__(self) -> None:
        t, c = self.trainer, self.trainer.config
        start = time.perf_counter()
        batch = self.batch(self.step)
        prepared = time.perf_counter()
        train_step(t.model, batch, t.optimisers, c.strategy, c.loss)
        if t.device.startswith("cuda"):
            torch.cuda.synchronize(t.device)
        done = time.perf_counter()
        self.shape = tuple(batch.kspace.shape)
        self.prep_seconds.append(prepared - start)
        self.step_seconds.append(done - prepared)
        self.step += 1

    def flops(self) -> dict[str, float]:
        """Cost-model FLOPs of one training step on the last batch's shape."""
        model = self.trainer.model
        b, coils, h, w = self.shape
        convs = 2.0 * conv_macs(model, h, w)["dense"] * b
        n = model.num_unrolls
        if hasattr(model, "cg_iters"):  # MoDL: A^H y, then CG per unroll (a normal op each)
            normals = n * model.cg_iters + 1
        else:  # PGD: one gradient step (A then A^H) per unroll
            normals = n
        ffts = normals * 2 * coils * fft_flops(h * w) * b
        # backward: a conv costs two more passes (input and weight gradients), a linear
        # operator one (its adjoint)
        return {"conv": 3 * convs, "fft": 2 * ffts}


def torch_rates(shape: tuple[int, ...], features: int, repeats: int) -> dict[str, float]:
    """torch's own 2-D FFT (fft2 + ifft2 of the batch's k-space) and 3x3 conv (F -> F on the
    batch's image) rates in GFLOP/s, best of ``repeats``."""
    b, c, h, w = shape
    x = torch.randn(b, c, h, w, dtype=torch.complex64)
    conv = torch.nn.Conv2d(features, features, 3, padding=1)
    image = torch.randn(b, features, h, w).contiguous(memory_format=torch.channels_last)
    conv = conv.to(memory_format=torch.channels_last)

    def fft_pair():
        torch.fft.ifft2(torch.fft.fft2(x, norm="ortho"), norm="ortho")

    def conv_fwd():
        with torch.no_grad():
            conv(image)

    times = alternate({"fft": fft_pair, "conv": conv_fwd}, repeats)
    return {
        "fft_gflops": 2 * b * c * fft_flops(h * w) / times["fft"] / 1e9,
        "conv_gflops": 2 * 9 * features * features * b * h * w / times["conv"] / 1e9,
    }


def profile_step(variant: Variant, top: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        variant()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "resources/training/dense.toml"))
    parser.add_argument("--train", required=True, help="training data folder")
    parser.add_argument("--variants", default="full,crop64", help="full and/or cropN, comma list")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--unrolls", type=int, default=None)
    parser.add_argument("--features", type=int, default=None)
    parser.add_argument("--top", type=int, default=12, help="profiler rows to print")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--json", metavar="OUT.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    variants: list[Variant] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
            crop = None if name == "full" else int(name.removeprefix("crop"))
            trainer = build(args.config, args.train, crop, args, Path(tmp) / name)
            variants.append(Variant(name, trainer))
        first = variants[0].trainer
        c = first.config
        print(
            f"config {Path(args.config).name}: {c.model['name']} N={first.model.num_unrolls} "
            f"F={c.model.get('features')} strategy {c.strategy} batch {c.batch_size} "
            f"loss {c.loss}, {len(first.train_data)} training slices, device {first.device}, "
            f"torch threads {torch.get_num_threads()}"
        )
        # warm-up: coil maps of every slice are estimated once and cached
        for v in variants:
            for i in range(len(v.trainer.train_data)):
                v.trainer.train_data.sample(i, 0)
            for _ in range(args.warmup):
                v()
            v.prep_seconds.clear()
            v.step_seconds.clear()
        for _ in range(args.rounds):  # alternating: the variants see the same load
            for v in variants:
                v()
        rates = torch_rates(variants[0].shape, int(c.model.get("features", 16)), 3)
        rows = []
        for v in variants:
            prep = statistics.median(v.prep_seconds)
            step = statistics.median(v.step_seconds)
            flops = v.flops()
            total = flops["conv"] + flops["fft"]
            rate = torch_rates(v.shape, int(c.model.get("features", 16)), 3)
            ideal = flops["conv"] / (rate["conv_gflops"] * 1e9) + flops["fft"] / (
                rate["fft_gflops"] * 1e9
            )
            rows.append(
                {
                    "variant": v.name,
                    "batch_shape": list(v.shape),
                    "data_seconds": prep,
                    "compute_seconds": step,
                    "steps_per_second": 1.0 / (prep + step),
                    "gflop_per_step": total / 1e9,
                    "conv_gflop": flops["conv"] / 1e9,
                    "fft_gflop": flops["fft"] / 1e9,
                    "achieved_gflops": total / step / 1e9,
                    "torch_fft_gflops": rate["fft_gflops"],
                    "torch_conv_gflops": rate["conv_gflops"],
                    "ideal_seconds": ideal,
                }
            )
        print(
            f"{'variant':<8} {'batch (B,C,H,W)':<20} {'data s':>7} {'step s':>7} {'steps/s':>8} "
            f"{'GFLOP':>7} {'GFLOP/s':>8} {'torch FFT':>10} {'torch conv':>11} {'ideal s':>8}"
        )
        for r in rows:
            print(
                f"{r['variant']:<8} {str(tuple(r['batch_shape'])):<20} {r['data_seconds']:>7.3f} "
                f"{r['compute_seconds']:>7.3f} {r['steps_per_second']:>8.3f} "
                f"{r['gflop_per_step']:>7.2f} {r['achieved_gflops']:>8.2f} "
                f"{r['torch_fft_gflops']:>10.2f} {r['torch_conv_gflops']:>11.2f} "
                f"{r['ideal_seconds']:>8.3f}"
            )
        print(
            "GFLOP: cost model per training step (3x forward convs, 2*9*Fin*Fout per pixel; 2x "
            "forward FFTs, 5 N log2 N, 2 per coil per normal operator); GFLOP/s over the step's compute "
            "time; torch FFT / conv: fft2+ifft2 of the batch k-space and a 3x3 F->F conv on the "
            "batch, best of 3; ideal s: the step's FLOPs at those rates"
        )
        profiles = {}
        if not args.no_profile:
            for v in variants:
                profiles[v.name] = profile_step(v, args.top)
                print(f"\ntorch.profiler, one step, {v.name} (self CPU time):")
                print(profiles[v.name])
        if args.json:
            Path(args.json).write_text(
                json.dumps({"rows": rows, "rates": rates, "profiles": profiles}, indent=2) + "\n"
            )
            print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
