"""Training speed on CPU: samples/s with and without the frozen-backbone feature cache.

    .venv/bin/python bench/bench_train.py [--images 300] [--epochs 1] [--threads 2]

Uses the demo profile of params.yaml (its frozen backbone) on a synthetic dataset. "With cache"
is measured on a warm cache (the one-off feature pass is reported separately); "without"
decodes, augments and runs the backbone on every step. samples/s counts training captions
per second of the training loop (validation excluded).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dove_model.config import DataParams, Params, SynthParams, load_params, parse_params
from dove_model.data.prepare import prepare
from dove_model.families.dispatch import train

REPO = Path(__file__).resolve().parents[1]


def with_profile(params: Params, cache_dir: Path, **changes: object) -> Params:
    raw = params.model_dump(mode="json", by_alias=True)
    raw["train"]["cache_dir"] = str(cache_dir)
    raw["train"]["profiles"][raw["train"]["profile"]].update(changes)
    return parse_params(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_params(args.params)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp_name:
        tmp = Path(tmp_name)
        synth = SynthParams(n_images=args.images, image_size=base.data.synth.image_size)
        data = DataParams(path=str(tmp / "synth"), prepared_dir=str(tmp / "prep"), synth=synth)
        dataset = prepare(Params(data=data), progress=False)
        common = {"epochs": args.epochs, "max_minutes": None, "early_stopping_patience": 99}

        start = time.perf_counter()
        cached = with_profile(base, tmp / "cache", feature_cache=True, **common)
        train(dataset, cached, tmp / "warm", progress=False)  # fills the cache
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = train(dataset, cached, tmp / "cached", progress=False)
        warm_s = time.perf_counter() - start
        uncached = with_profile(base, tmp / "cache", feature_cache=False, **common)
        start = time.perf_counter()
        raw = train(dataset, uncached, tmp / "raw", progress=False)
        raw_s = time.perf_counter() - start

    profile = base.train.active
    print(
        f"profile {base.train.profile}: {base.model_for_training().backbone} frozen, "
        f"batch {profile.batch_size}, crop {profile.crop} px, {args.images} synthetic images, "
        f"{args.epochs} epoch(s), {args.threads} CPU thread(s)"
    )
    print(
        f"with feature cache:    {warm.train_samples_per_s:8.1f} samples/s "
        f"(run {warm_s:.0f} s; first run incl. feature pass {first_s:.0f} s)"
    )
    print(f"without feature cache: {raw.train_samples_per_s:8.1f} samples/s (run {raw_s:.0f} s)")
    print(f"speed-up: {warm.train_samples_per_s / raw.train_samples_per_s:.1f}x")


if __name__ == "__main__":
    main()
