"""Acceptance figure 1: the demo profile learns the synthetic default within 10 minutes.

    .venv/bin/python bench/bench_train_demo.py [--out artifacts/bench/demo] [--threads 2]

Renders/prepares the synthetic dataset of params.yaml (2,000 images by default), trains the
demo profile (its `max_minutes` budget applies) and evaluates on the test split. Prints the
validation mR per epoch, the test mR (exhaustive and two-stage) beside the random-chance mR,
and the wall-clock training time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dove_model.config import load_params, parse_params
from dove_model.data.prepare import prepare
from dove_model.evaluation.evaluate import evaluate
from dove_model.families.dispatch import train

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "artifacts" / "bench" / "demo")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    raw = load_params(args.params).model_dump(mode="json", by_alias=True)
    raw["data"]["path"] = str(args.out / "synth")
    raw["data"]["prepared_dir"] = str(args.out / "prepared")
    raw["train"]["cache_dir"] = str(args.out / "cache")
    params = parse_params(raw)
    dataset = prepare(params, progress=True)
    start = time.monotonic()
    result = train(dataset, params, args.out / "train", resume=False)
    minutes = (time.monotonic() - start) / 60
    metrics = evaluate(result.model_dir, dataset, params, args.out / "metrics.json")
    profile = params.train.active
    print(
        f"\nsynthetic default ({params.data.synth.n_images} images), profile "
        f"{params.train.profile} ({params.model_for_training().backbone}, frozen, "
        f"{profile.crop} px), {args.threads} CPU thread(s)"
    )
    print(
        f"training: {result.epochs_run} epoch(s) in {minutes:.1f} min "
        f"(stopped by {result.stop_reason}); best val mR {result.best_metrics['mR']:.2f} "
        f"at epoch {result.best_epoch}"
    )
    print(
        f"test mR {metrics['mR']:.2f} (two-stage {metrics['two_stage']['mR']:.2f}) vs "
        f"random-chance mR {metrics['random_chance_mR']:.2f}"
    )


if __name__ == "__main__":
    main()
