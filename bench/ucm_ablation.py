"""UCM-Captions ablation: full DOVE and the paper's three ablations, same seed and budget.

    .venv/bin/python bench/ucm_ablation.py [--minutes 5] [--out artifacts/bench/ucm]

Trains on ``../shared/datasets/ucm-captions`` train (1,680 images), selects and evaluates on
its ``test`` split (210 images; the folder withholds the literature's test set, see its
README), and prints R@1/5/10 both ways and mR per variant. The backbone is frozen and
randomly initialised (no pretrained weights offline) and its features are cached once, so
every variant sees identical visual features; this is *not* the paper's setting
(ImageNet-pretrained ResNet-50): compare the rows with each other, not with the paper.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dove_model.config import Params, parse_params
from dove_model.data.importer import import_dataset
from dove_model.data.manifest import MANIFEST_FILE
from dove_model.evaluation.evaluate import evaluate
from dove_model.training.train import train

REPO = Path(__file__).resolve().parents[1]
UCM = REPO.parent / "shared" / "datasets" / "ucm-captions"
VARIANTS: dict[str, dict[str, object]] = {
    "DOVE (full)": {},
    "w/o ROAM (VSE)": {"use_roam": False},
    "w/o DTGA": {"use_dtga": False},
    "w/o global constraint": {"lambda_g": 0.0},
}
COLUMNS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "mR")


def prepared_ucm(out: Path) -> Path:
    dataset = out / "prepared"
    if not (dataset / MANIFEST_FILE).is_file():
        import_dataset(
            "karpathy",
            UCM / "dataset.json",
            dataset,
            images_dir=UCM / "images",
            name="ucm-captions",
        )
    return dataset


def params_for(variant: dict[str, object], args: argparse.Namespace, out: Path) -> Params:
    profile = {
        "epochs": args.epochs,
        "batch_size": 64,
        "lr": 5e-4,
        "lr_decay": 0.7,
        "lr_step_epochs": 10,
        "resize": args.image_size,
        "crop": args.image_size,
        "eval_size": args.image_size,
        "amp": False,
        "max_minutes": args.minutes,
        "early_stopping_patience": 6,
        "model": {
            "backbone": args.backbone,
            "embed_dim": args.embed_dim,
            "word_dim": 128,
            "vocab_min_freq": 2,
            **variant,
        },
    }
    return parse_params(
        {
            "train": {
                "profile": "ucm",
                "seed": args.seed,
                "cache_dir": str(out / "cache"),
                "val_split": "test",
                "profiles": {"ucm": profile},
            },
            "evaluate": {"split": "test", "two_stage_k": 100},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "artifacts" / "bench" / "ucm")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per variant")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (UCM / "dataset.json").is_file():
        raise SystemExit(f"UCM-Captions not found at {UCM}")
    torch.set_num_threads(args.threads)
    dataset = prepared_ucm(args.out)
    rows: dict[str, dict[str, float]] = {}
    for name, variant in VARIANTS.items():
        slug = name.split(" (")[0].replace("/", "").replace(" ", "_").lower()
        run_dir = args.out / slug
        params = params_for(variant, args, args.out)
        start = time.monotonic()
        result = train(dataset, params, run_dir, resume=False)
        metrics = evaluate(result.model_dir, dataset, params, run_dir / "metrics.json")
        rows[name] = {k: metrics[k] for k in COLUMNS}
        rows[name]["epochs"] = result.epochs_run
        print(
            f"{name}: mR {metrics['mR']:.2f} after {result.epochs_run} epochs "
            f"({time.monotonic() - start:.0f} s)",
            flush=True,
        )
    chance = metrics["random_chance_mR"]
    (args.out / "table.json").write_text(json.dumps(rows, indent=2))
    print(
        f"\nUCM-Captions test (210 images x 1,050 captions), seed {args.seed}, "
        f"{args.minutes:g} min budget each, {args.backbone} frozen random init, "
        f"{args.image_size} px; random-chance mR {chance:.2f}\n"
    )
    print("| variant | i2t R@1 | R@5 | R@10 | t2i R@1 | R@5 | R@10 | mR | epochs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        cells = " | ".join(f"{row[k]:.2f}" for k in COLUMNS)
        print(f"| {name} | {cells} | {int(row['epochs'])} |")


if __name__ == "__main__":
    main()
