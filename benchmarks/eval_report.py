"""Reproducible evaluation report of the bundled models against tuned classical baselines.

Writes ``OUT/report.md``, ``OUT/report.json`` and per-iteration PSNR curve figures
(``OUT/curves_<dataset>_<setting>.png``): mean (std) over slices of PSNR / SSIM / NMSE per method at
4x and 8x with 1-D random and equispaced masks on

- ``sim``: the simulated Colin27 test split (``data/sim/test``),
- ``mni``: the MNI152 out-of-distribution split (``data/sim_mni/test``),
- ``twix``: the real Siemens TWIX phantom (``../shared/data/siemens_twix_phantom/gre.dat``, fully
  sampled, 2 coils; skipped when absent).

The l1-wavelet regularisation is tuned per setting on the validation split (``data/sim/val``),
never on a test split. Masks are seeded with ``stable_seed(file name, slice, setting)``.
Metrics are fastMRI's per slice (data_range = the slice's reference maximum), then mean (std).

Run (after ``benchmarks/make_training_data.sh``)::

    python benchmarks/eval_report.py --out docs/report
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.compare import get_method, prepare_from_volume, stream
from mriviewer.core.files import atomic_write_text
from mriviewer.core.io import open_kspace
from mriviewer.core.physics.masks import MaskSpec, make_mask, stable_seed
from mriviewer.core.reference import describe_reference

REPO = Path(__file__).resolve().parents[1]
SETTINGS = [
    ("random", 4.0, 0.08),
    ("equispaced", 4.0, 0.08),
    ("random", 8.0, 0.04),
    ("equispaced", 8.0, 0.04),
]
CLASSICAL = ["zero-filled", "cg-sense", "l1-wavelet", "grappa"]
MODELS = [
    "model:dense",
    "model:gleam",
    "model:pun-it",
    "model:pgd",
    "model:gleam-deep",
    "model:dense-n4",
]
L1_GRID = [0.0005, 0.001, 0.002, 0.005, 0.01]


def relative_to_repo(path: Path) -> str:
    """``path`` relative to the repository (``../shared/...`` beside it), never the absolute
    path of the machine the report ran on."""
    import os

    # abspath, not resolve(): ../shared is often a symlink, and the report names it as given
    return os.path.relpath(os.path.abspath(path), REPO)


def model_summary(method: Any) -> dict[str, Any]:
    """What the report says of a bundled model: its settings (path relative to the repository)
    and, from its card, the training steps, time, device, data and accelerations."""
    settings = {**method.settings(), "path": relative_to_repo(Path(method.settings()["path"]))}
    card = method.card
    extra = card.extra or {}
    return settings | {
        "steps": card.steps,
        "accelerations": card.accelerations,
        "training_data": (card.training_data.get("train") or {}).get("folder"),
        "training_seconds": extra.get("training_seconds"),
        "training_device": extra.get("training_device"),
        "config": extra.get("config"),
    }


def setting_name(kind: str, accel: float) -> str:
    return f"{kind}-{int(accel)}x"


def slices_of(folder_or_file: Path) -> list[tuple[Path, int]]:
    """Every (file, slice index) of a folder of k-space files or of one file."""
    files = sorted(folder_or_file.glob("*.h5")) if folder_or_file.is_dir() else [folder_or_file]
    out = []
    for f in files:
        volume = open_kspace(f)
        out += [(f, k) for k in range(volume.num_slices)]
    return out


#: metric convention and region (set from --reference / --metrics-region in main)
METRICS = {"reference_kind": "rss", "metrics_region": "all"}


def problems(items: list[tuple[Path, int]], kind: str, accel: float, cf: float):
    """Yield (label, ReconProblem) for every slice under the setting's mask."""
    volumes: dict[Path, Any] = {}
    for path, index in items:
        volume = volumes.setdefault(path, open_kspace(path))
        spec = MaskSpec(kind, accel, cf, calib=20, seed=stable_seed(path.name, index, kind, accel))
        mask = make_mask(spec, volume.matrix)
        yield f"{path.name}#{index}", prepare_from_volume(volume, mask, index, **METRICS)


def run(method, problem) -> tuple[dict[str, float], list[float], float]:
    """Final metrics, PSNR per iteration, and seconds of one method on one problem."""
    start = time.perf_counter()
    curve = []
    last = None
    for record in stream(method, problem, device="cpu"):
        curve.append(record.metrics["psnr"])
        last = record
    seconds = time.perf_counter() - start
    return last.metrics, curve, seconds


def tune_l1(val_items, kind, accel, cf) -> tuple[float, dict[str, float]]:
    """The l1-wavelet lamda of L1_GRID with the best mean validation PSNR for this setting."""
    scores = {lam: [] for lam in L1_GRID}
    for _, problem in problems(val_items, kind, accel, cf):
        for lam in L1_GRID:
            metrics, _, _ = run(get_method("l1-wavelet", lamda=lam), problem)
            scores[lam].append(metrics["psnr"])
    means = {str(lam): float(np.mean(v)) for lam, v in scores.items()}
    best = max(L1_GRID, key=lambda lam: np.mean(scores[lam]))
    return best, means


def summarise(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def plot_curves(curves: dict[str, list[list[float]]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6), dpi=150)
    ax = fig.add_subplot(1, 1, 1)
    for name, runs in curves.items():
        length = min(len(c) for c in runs)
        mean = np.mean([c[:length] for c in runs], axis=0)
        ax.plot(range(length), mean, marker="o" if length <= 20 else None, ms=3, label=name)
    ax.set_xlabel("iteration / unroll")
    ax.set_ylabel("PSNR (dB), mean over slices")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/report")
    parser.add_argument("--data", default=str(REPO / "data"))
    parser.add_argument(
        "--twix", default=str(REPO.parent / "shared/data/siemens_twix_phantom/gre.dat")
    )
    parser.add_argument("--max-slices", type=int, default=0, help="per dataset (0: all)")
    parser.add_argument("--settings", default="all", help="comma list like random-4x (default all)")
    parser.add_argument("--reference", default="rss", choices=("rss", "sense"))
    parser.add_argument("--metrics-region", default="all", choices=("all", "foreground"))
    args = parser.parse_args()
    METRICS.update(reference_kind=args.reference, metrics_region=args.metrics_region)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    datasets = {"sim": data / "sim/test", "mni": data / "sim_mni/test"}
    if Path(args.twix).exists():
        datasets["twix"] = Path(args.twix)
    items = {name: slices_of(p) for name, p in datasets.items()}
    val_items = slices_of(data / "sim/val")
    if args.max_slices:
        items = {k: v[: args.max_slices] for k, v in items.items()}
        val_items = val_items[: args.max_slices]
    settings = [
        s
        for s in SETTINGS
        if args.settings == "all" or setting_name(s[0], s[1]) in args.settings.split(",")
    ]
    models = {name: get_method(name) for name in MODELS}
    report: dict[str, Any] = {"settings": {}, "results": {}, "tuning": {}, "datasets": {}}
    report["reference"] = describe_reference(args.reference, args.metrics_region)
    report["datasets"] = {
        k: {"path": relative_to_repo(datasets[k]), "slices": [i[0].name + f"#{i[1]}" for i in v]}
        for k, v in items.items()
    }
    report["models"] = {name: model_summary(m) for name, m in models.items()}
    for kind, accel, cf in settings:
        sname = setting_name(kind, accel)
        lam, means = tune_l1(val_items, kind, accel, cf)
        report["tuning"][sname] = {"l1-wavelet lamda": lam, "validation mean PSNR per lamda": means}
        print(f"{sname}: l1-wavelet lamda {lam} (validation PSNR {means})", flush=True)
        methods = {name: get_method(name) for name in CLASSICAL if name != "l1-wavelet"}
        methods["l1-wavelet"] = get_method("l1-wavelet", lamda=lam)
        methods.update(models)
        for dname, ditems in items.items():
            per_method: dict[str, dict[str, list[float]]] = {
                m: {"psnr": [], "ssim": [], "nmse": [], "seconds": []} for m in methods
            }
            curves: dict[str, list[list[float]]] = {m: [] for m in methods}
            for _, problem in problems(ditems, kind, accel, cf):
                for mname, method in methods.items():
                    metrics, curve, seconds = run(method, problem)
                    for key in ("psnr", "ssim", "nmse"):
                        per_method[mname][key].append(metrics[key])
                    per_method[mname]["seconds"].append(seconds)
                    curves[mname].append(curve)
            report["results"].setdefault(dname, {})[sname] = {
                m: {k: summarise(v) for k, v in vals.items()} for m, vals in per_method.items()
            }
            report["results"][dname][sname]["curves"] = {
                m: np.mean([c[: min(map(len, cs))] for c in cs], axis=0).tolist()
                for m, cs in curves.items()
            }
            plot_curves(
                {m: c for m, c in curves.items() if m != "zero-filled"},
                f"{dname}, {sname}: PSNR per iteration",
                out / f"curves_{dname}_{sname}.png",
            )
            line = "  ".join(f"{m} {np.mean(v['psnr']):.2f}" for m, v in per_method.items())
            print(f"  {dname} {sname}: {line}", flush=True)
            write_report(out, report)  # after every dataset, so a long run leaves partial results
    write_report(out, report)
    print(f"wrote {out}/report.md, report.json and curve figures")


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write report.json and report.md (complete or partial)."""
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    atomic_write_text(out / "report.md", markdown(report))


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Evaluation report",
        "",
        "PSNR dB / SSIM, mean (std) over slices; fastMRI metrics per slice.",
        "",
        report.get("reference", "reference: RSS of the fully sampled data (fastMRI)") + ".",
        "",
    ]
    for dname, by_setting in report["results"].items():
        lines += [
            f"## {dname} ({report['datasets'][dname]['path']}, {len(report['datasets'][dname]['slices'])} slices)",
            "",
        ]
        snames = list(by_setting)
        lines.append("| method | " + " | ".join(snames) + " |")
        lines.append("|---|" + "---|" * len(snames))
        methods = [m for m in by_setting[snames[0]] if m != "curves"]
        for m in methods:
            cells = []
            for s in snames:
                r = by_setting[s][m]
                cells.append(
                    f"{r['psnr']['mean']:.2f} ({r['psnr']['std']:.2f}) / {r['ssim']['mean']:.3f}"
                )
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    if report.get("models"):
        lines += [
            "## Models",
            "",
            "| model | architecture | strategy | trained on | steps | training time | config |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, m in report["models"].items():
            arch = m["architecture"]
            strategy = m["strategy"].get("name", "")
            if strategy == "gleam":
                strategy += f" M={m['strategy'].get('modules')}"
            seconds = m.get("training_seconds")
            time_text = f"{seconds / 60:.0f} min, {m.get('training_device')}" if seconds else "-"
            accels = ", ".join(f"{a:g}x" for a in m.get("accelerations") or [])
            lines.append(
                f"| {name} | {arch['name']} N={arch.get('num_unrolls')}, "
                f"{arch.get('features')} features | {strategy} | {m.get('training_data')} "
                f"({accels}) | {m.get('steps')} | {time_text} | {m.get('config') or '-'} |"
            )
        lines.append("")
    lines += ["## l1-wavelet tuning (validation split)", ""]
    for s, t in report["tuning"].items():
        lines.append(f"- {s}: lamda = {t['l1-wavelet lamda']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
