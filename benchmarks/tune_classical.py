"""Sweep the regularisation of CG-SENSE and l1-wavelet on a case and print per-volume PSNR.

This is how the default ``lamda`` values in ``mriviewer/core/recon/{cg_sense,l1_wavelet}.py``
were chosen (demo case, 1-D random mask R=4, centre fraction 0.08, mask seeds 0-2)::

    python benchmarks/tune_classical.py demo --seeds 0 1 2

Prints one row per setting: PSNR (dB) of the whole volume for each mask seed, and their mean.
"""

from __future__ import annotations

import argparse

import numpy as np

from mriviewer.core.compare import final_record, get_method, prepare_from_volume
from mriviewer.core.images import center_crop
from mriviewer.core.io import open_kspace
from mriviewer.core.metrics import psnr
from mriviewer.core.physics import MaskSpec, make_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--accel", type=float, default=4.0)
    parser.add_argument("--center-fraction", type=float, default=0.08)
    parser.add_argument("--cg-lamdas", type=float, nargs="+", default=[0, 0.001, 0.003, 0.01, 0.03])
    parser.add_argument("--cg-iters", type=int, nargs="+", default=[10, 15, 30])
    parser.add_argument(
        "--l1-lamdas", type=float, nargs="+", default=[0.0005, 0.001, 0.002, 0.003, 0.005, 0.01]
    )
    parser.add_argument("--l1-iters", type=int, nargs="+", default=[40])
    args = parser.parse_args()

    volume = open_kspace(args.file)
    problems = {}
    for seed in args.seeds:
        mask = make_mask(
            MaskSpec("random", args.accel, args.center_fraction, seed=seed), volume.matrix
        )
        problems[seed] = [prepare_from_volume(volume, mask, k) for k in range(volume.num_slices)]

    def volume_psnr(name: str, **settings) -> list[float]:
        out = []
        for probs in problems.values():
            ref = np.stack([p.reference for p in probs])
            pred = []
            for p in probs:
                last = final_record(get_method(name, **settings), p, metrics=False)
                pred.append(center_crop(np.abs(last.image), p.reference.shape))
            out.append(psnr(ref, np.stack(pred)))
        return out

    header = ["method", "lamda", "max_iter", *[f"seed {s}" for s in args.seeds], "mean"]
    print("  ".join(f"{h:>10}" for h in header))
    rows = [("zero-filled", None, None)]
    rows += [("cg-sense", lam, it) for lam in args.cg_lamdas for it in args.cg_iters]
    rows += [("l1-wavelet", lam, it) for lam in args.l1_lamdas for it in args.l1_iters]
    for name, lam, it in rows:
        settings = {} if lam is None else {"lamda": lam, "max_iter": it}
        values = volume_psnr(name, **settings)
        cells = [name, "-" if lam is None else f"{lam:g}", "-" if it is None else str(it)]
        cells += [f"{v:.2f}" for v in values] + [f"{np.mean(values):.2f}"]
        print("  ".join(f"{c:>10}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
