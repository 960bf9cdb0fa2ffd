"""Index swap under load: c=16 text searches for ``--seconds`` against a real `bentoml serve`
(the synthetic deployment of the load test), a new index version published in the middle.

Prints failed requests, p50/p99 over the run, p99 of the requests sent within ``--window``
seconds of the flip, and how long the service took to serve the new version (flip -> /info).
The new version is built beforehand by the same model over a larger archive
(``--per-scene`` images a scene); publishing copies it in under ``versions/`` and flips
``CURRENT``, as ``dove index build`` does. Prints, never asserts.

    .venv/bin/python bench/bench_swap.py --seconds 40 --concurrency 16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from dove_model.config import Params
from dove_model.index.build import build_index
from dove_model.serving.launch import running_service, serving_env
from dove_model.testing.deployment import (
    TimedRequest,
    deploy_synthetic,
    load_during,
    publish_index_copy,
    synthetic_dataset,
    wait_for_info,
)

QUERIES = [
    "a blue lake surrounded by land",
    "green farmland with rectangular fields",
    "a dense city with grey buildings and roads",
    "yellow desert with sand dunes",
    "there is a lake",
    "grey roads",
]


def summary(results: list[TimedRequest], flip: float, window: float) -> dict[str, float]:
    ms = np.array([r.seconds for r in results]) * 1000
    near = np.array([abs(r.start - flip) <= window for r in results])
    span = max(r.start + r.seconds for r in results) - min(r.start for r in results)
    return {
        "requests": len(results),
        "failed": sum(r.status != 200 for r in results),
        "qps": len(results) / span,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "swap_window_requests": int(near.sum()),
        "swap_window_p50_ms": float(np.percentile(ms[near], 50)),
        "swap_window_p99_ms": float(np.percentile(ms[near], 99)),
        "outside_window_p99_ms": float(np.percentile(ms[~near], 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--window", type=float, default=2.0, help="+- s around the flip")
    parser.add_argument("--per-scene", type=int, default=8, help="new version's archive")
    parser.add_argument("--poll", type=float, default=1.0, help="serve.index_poll_s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as tmp:
        work = Path(tmp)
        deployment = deploy_synthetic(work / "deployment")
        grown = synthetic_dataset(work / "grown", per_scene=args.per_scene)
        staged = build_index(deployment.model_dir, grown, Params(), work / "staged", progress=False)
        (work / "params.yaml").write_text(f"serve:\n  index_poll_s: {args.poll}\n")
        env = serving_env(
            params_file=work / "params.yaml",
            model_dir=deployment.model_dir,
            index_dir=deployment.index_dir,
            bentoml_home=work / "bentoml",
        )
        env.pop("DOVE_API_KEY", None)
        with running_service(env, log_file=work / "serve.log") as proc:
            seen: list[float] = []

            def swap() -> None:
                version = publish_index_copy(deployment.index_dir, staged)
                wait_for_info(proc.url, lambda info: info["index_version"] == version, 60)
                seen.append(time.perf_counter())

            results, flip = load_during(
                proc.url, swap, concurrency=args.concurrency, seconds=args.seconds,
                action_at=args.seconds / 2, queries=QUERIES,
            )  # fmt: skip
            info = httpx.post(proc.url + "/info", json={}).json()
        figures = summary(results, flip, args.window)
        print(f"c={args.concurrency}, {args.seconds:.0f} s, flip at {args.seconds / 2:.0f} s, "
              f"poll {args.poll} s; served {info['n_images']} images after the swap")  # fmt: skip
        print(f"flip -> /info shows the new version: {seen[0] - flip:.2f} s")
        for name, value in figures.items():
            print(f"{name:>24}: {value:.1f}")


if __name__ == "__main__":
    main()
