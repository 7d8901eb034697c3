"""``mriviewer bench generalization``: does a PUN-IT pruned model generalise better than dense?

Trains (or takes, ``--dense PATH --pun PATH``) a dense and a PUN-IT model with the same training
settings at one acceleration and mask type, then evaluates both (and zero-filled ``A^H y``) on
held-out slices at: the training setting, a higher acceleration, the other 1-D mask type
(random <-> equispaced), and the training setting with complex Gaussian noise added to the
sampled k-space (``sigma = noise x RMS of the sampled k-space``, per slice, fixed seed).
Prints PSNR / SSIM mean (std) over slices per setting and model (fastMRI metrics on magnitudes
in original units, centre-cropped to the reference, data_range = reference max) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mriviewer.core.errors import ConfigError

OTHER_MASK = {"random": "equispaced", "equispaced": "random"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "generalization",
        help="dense vs PUN-IT: PSNR/SSIM at the training setting, higher R, other mask, noise",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--config", metavar="TRAIN.toml", help="base training settings")
    parser.add_argument("--train", dest="train_dir", metavar="FOLDER", help="training data")
    parser.add_argument("--val", dest="val_dir", metavar="FOLDER", help="validation data")
    parser.add_argument(
        "--test",
        dest="test_dir",
        required=True,
        metavar="FOLDER",
        help="held-out test data (fully sampled, e.g. from mriviewer simulate)",
    )
    parser.add_argument("--dense", metavar="PATH", help="use this dense model (no training)")
    parser.add_argument("--pun", metavar="PATH", help="use this PUN-IT model (no training)")
    parser.add_argument("--model", choices=["modl", "pgd"], help="architecture")
    parser.add_argument("--unrolls", type=int, help="unrolls N")
    parser.add_argument("--features", type=int, help="denoiser features")
    parser.add_argument("--steps", type=int, help="training steps of each model")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--density", type=float, default=0.03, help="PUN-IT kept fraction")
    parser.add_argument("--search-steps", type=int, default=100, help="PUN-IT mask-search steps")
    parser.add_argument("--prune-temperature", type=float)
    parser.add_argument("--prune-beta", type=float)
    parser.add_argument("--prune-exempt", help="e.g. first,last")
    parser.add_argument(
        "--prune-min-layer-density", type=float, help="per-layer floor of the PUN-IT mask"
    )
    parser.add_argument("--mask", choices=["random", "equispaced"], help="training mask kind")
    parser.add_argument("--center-fraction", type=float, help="training centre fraction")
    parser.add_argument("--acceleration", type=float, help="training acceleration (default 4)")
    parser.add_argument("--high-acceleration", type=float, default=8.0, help="unseen higher R")
    parser.add_argument("--noise", type=float, default=0.05, help="relative k-space noise level")
    parser.add_argument("--max-slices", type=int, default=None, help="test slices to use")
    parser.add_argument("--coil-method", choices=["espirit", "jsense", "lowres"])
    parser.add_argument("--device", help="auto, cpu, cuda")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (1 is often fastest on a busy machine)"
    )
    parser.add_argument(
        "--out",
        default="runs/bench-generalization",
        metavar="DIR",
        help="where the two models are trained (DIR/dense, DIR/pun-it)",
    )
    parser.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    parser.set_defaults(func=run)


def _train_config(args: argparse.Namespace, name: str):
    from mriviewer.core.training import load_config

    overrides: dict[str, Any] = {
        "train_dir": args.train_dir,
        "val_dir": args.val_dir,
        "model.name": args.model,
        "model.num_unrolls": args.unrolls,
        "model.features": args.features,
        "steps": args.steps,
        "lr": args.lr,
        "mask.kind": args.mask,
        "mask.center_fraction": args.center_fraction,
        "accelerations": [args.acceleration] if args.acceleration else None,
        "coil_method": args.coil_method,
        "device": args.device,
        "seed": args.seed,
        "threads": args.threads,
        "output": str(Path(args.out) / name),
        "progress": False,
    }
    if name == "pun-it":
        overrides |= {
            "prune.method": "it",
            "prune.density": args.density,
            "prune.search_steps": args.search_steps,
            "prune.temperature": args.prune_temperature,
            "prune.beta": args.prune_beta,
            "prune.exempt": args.prune_exempt,
            "prune.min_layer_density": args.prune_min_layer_density,
        }
    config = load_config(args.config, overrides)
    if name == "dense":
        config.prune = None
    if len(config.accelerations) != 1:
        raise ConfigError("the benchmark trains at one acceleration; give --acceleration R")
    if config.mask.get("kind") not in OTHER_MASK:
        raise ConfigError("the benchmark needs a 1-D mask (random or equispaced) for training")
    return config


def settings_for(config, high_acceleration: float, noise: float) -> list[dict[str, Any]]:
    """The four test settings: ``{"name", "kind", "acceleration", "center_fraction", "noise"}``."""
    kind = config.mask["kind"]
    acc = float(config.accelerations[0])
    cf = float(config.mask.get("center_fraction", 0.08))
    high_cf = cf * acc / high_acceleration  # fastMRI pairs: 4x / 0.08, 8x / 0.04
    return [
        {
            "name": f"train: {kind} {acc:g}x",
            "kind": kind,
            "acceleration": acc,
            "center_fraction": cf,
            "noise": 0.0,
        },
        {
            "name": f"higher R: {kind} {high_acceleration:g}x",
            "kind": kind,
            "acceleration": high_acceleration,
            "center_fraction": high_cf,
            "noise": 0.0,
        },
        {
            "name": f"other mask: {OTHER_MASK[kind]} {acc:g}x",
            "kind": OTHER_MASK[kind],
            "acceleration": acc,
            "center_fraction": cf,
            "noise": 0.0,
        },
        {
            "name": f"noise {noise:g}: {kind} {acc:g}x",
            "kind": kind,
            "acceleration": acc,
            "center_fraction": cf,
            "noise": noise,
        },
    ]


def add_noise(sample, level: float, seed: int):
    """The sample with complex Gaussian noise on its sampled k-space (``level`` x RMS)."""
    if level <= 0:
        return sample
    sampled = sample.kspace[:, sample.mask]
    sigma = level * float(np.sqrt(np.mean(np.abs(sampled) ** 2)))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(sample.kspace.shape) + 1j * rng.standard_normal(sample.kspace.shape)
    noise *= sigma / np.sqrt(2)
    kspace = (sample.kspace + noise * sample.mask[None]).astype(np.complex64)
    return replace(sample, kspace=kspace)


def evaluate(
    models: dict[str, Any],
    config,
    test_dir: str,
    setting: dict[str, Any],
    device: str,
    max_slices: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Per model (and ``zero-filled``): PSNR / SSIM mean, std and per-slice values."""
    import torch

    from mriviewer.core.io import center_crop
    from mriviewer.core.metrics import psnr, ssim
    from mriviewer.core.physics.masks import MaskSpec, stable_seed
    from mriviewer.core.training import SliceDataset, collate

    spec = MaskSpec(
        kind=setting["kind"],
        acceleration=setting["acceleration"],
        center_fraction=setting["center_fraction"],
    )
    data = SliceDataset(
        test_dir,
        spec,
        [setting["acceleration"]],
        config.coil_method,
        config.calib,
        max_slices=max_slices,
    )
    rows: dict[str, dict[str, list[float]]] = {
        name: {"psnr": [], "ssim": []} for name in ["zero-filled", *models]
    }
    for i in range(len(data)):
        sample = data.validation_sample(i, setting["acceleration"])
        sample = add_noise(sample, setting["noise"], stable_seed("bench noise", i))
        batch = collate([sample]).to(device)
        with torch.inference_mode():
            images = {}
            for name, model in models.items():
                images[name] = model(batch.kspace, batch.maps, batch.mask)
            images["zero-filled"] = (
                next(iter(models.values())).measurement(batch.kspace, batch.maps, batch.mask).aty
            )
        ref = sample.reference
        for name, image in images.items():
            pred = center_crop(np.abs(image[0].cpu().numpy()) * sample.scale, ref.shape)
            rows[name]["psnr"].append(psnr(ref, pred))
            rows[name]["ssim"].append(ssim(ref, pred))
    return {
        name: {
            "psnr_mean": float(np.mean(r["psnr"])),
            "psnr_std": float(np.std(r["psnr"])),
            "ssim_mean": float(np.mean(r["ssim"])),
            "ssim_std": float(np.std(r["ssim"])),
            "slices": len(r["psnr"]),
            "psnr": r["psnr"],
            "ssim": r["ssim"],
        }
        for name, r in rows.items()
    }


def format_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Rows: setting x model; PSNR mean (std) dB and SSIM mean (std)."""
    lines = [f"{'setting':<28} {'model':<12} {'PSNR dB mean (std)':>19} {'SSIM mean (std)':>17}"]
    for setting, per_model in results.items():
        for name, r in per_model.items():
            lines.append(
                f"{setting:<28} {name:<12} "
                f"{r['psnr_mean']:>11.2f} ({r['psnr_std']:.2f}) "
                f"{r['ssim_mean']:>9.4f} ({r['ssim_std']:.4f})"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mriviewer.core.checkpoints import load_model, resolve_model
    from mriviewer.core.device import resolve_device
    from mriviewer.core.pruning import read_masks
    from mriviewer.core.pruning.export import describe_pruning
    from mriviewer.core.training import Trainer

    if (args.dense is None) != (args.pun is None):
        raise ConfigError("give both --dense and --pun, or neither (then both are trained)")
    if args.dense is None and args.config is None and args.train_dir is None:
        raise ConfigError("training needs --config TRAIN.toml or --train FOLDER")
    if not Path(args.test_dir).is_dir():
        raise ConfigError("test data folder not found", args.test_dir)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    paths: dict[str, Path] = {}
    config = None
    for name in ("dense", "pun-it"):
        given = args.dense if name == "dense" else args.pun
        if given is not None:
            paths[name] = resolve_model(given)
            continue
        config = _train_config(args, name)
        trainer = Trainer(config)
        print(
            f"training {name}: {config.model['name']} N={trainer.model.num_unrolls}, "
            f"{trainer.total_steps} steps on {len(trainer.train_data)} slices"
            + (f", density {config.prune['density']}" if config.prune else ""),
            flush=True,
        )
        trainer.run()
        paths[name] = trainer.output / "model.safetensors"
    device = resolve_device(args.device or "auto")
    models = {}
    info = {}
    for name, path in paths.items():
        model, card = load_model(path, device=device)
        if name == "pun-it":  # a given pruned model is labelled by the method on its card
            method = card.extra.get("pruning", {}).get("method")
            if method is None:
                print("warning: the --pun model has no pruning record (it is dense)")
            name = method or "unpruned"
        models[name] = model
        info[name] = {
            "path": str(path),
            "card_accelerations": card.accelerations,
            "card_mask": card.mask,
        }
        info[name] |= {
            k: v
            for k, v in describe_pruning(model, card.to_dict(), read_masks(path)).items()
            if k in ("density", "params", "flops")
        }
        if config is None:
            config = _config_from_card(args, card)
    assert config is not None
    results = {}
    for setting in settings_for(config, args.high_acceleration, args.noise):
        results[setting["name"]] = evaluate(
            models, config, args.test_dir, setting, device, args.max_slices
        )
    print(format_table(results))
    for name, i in info.items():
        flops = i["flops"]
        print(
            f"{name}: density {i['density']:.4f}, {i['params']['nonzero']} nonzero of "
            f"{i['params']['total']} parameters, {flops['pruned'] / 1e9:.3f} GFLOP per forward at "
            f"{flops['image_size'][0]}x{flops['image_size'][1]}, {flops['coils']} coils"
        )
    out = {
        "benchmark": "generalization",
        "test_dir": str(args.test_dir),
        # the setting the others vary from; when the bench trained the models it is their
        # training setting too (given models: their own training is models[*].card_*)
        ("training" if args.dense is None else "base_setting"): {
            "mask": config.mask,
            "accelerations": config.accelerations,
            **({"steps": config.steps, "model": config.model} if args.dense is None else {}),
        },
        "settings": settings_for(config, args.high_acceleration, args.noise),
        "models": info,
        "results": results,
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        from mriviewer.core.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(out, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


def _config_from_card(args: argparse.Namespace, card):
    """Test settings from the dense model's card (mask kind, centre fraction, acceleration)."""
    from mriviewer.core.training import TrainConfig

    mask = {k: v for k, v in card.mask.items() if k in ("kind", "center_fraction", "calib")}
    if args.mask:
        mask["kind"] = args.mask
    if args.center_fraction:
        mask["center_fraction"] = args.center_fraction
    accelerations = [args.acceleration] if args.acceleration else (card.accelerations or [4.0])[:1]
    train = card.training_data.get("train") or {}
    return TrainConfig(
        model=card.architecture,
        mask=mask or {"kind": "random", "center_fraction": 0.08},
        accelerations=[float(a) for a in accelerations],
        coil_method=args.coil_method or train.get("coil_method", "espirit"),
        steps=card.steps,
        train_dir="(given models)",
    )
