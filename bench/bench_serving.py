"""Text -> image latency and throughput through the HTTP endpoint, archive size x index kind.

Archives are synthetic (random unit vectors in float16, the real on-disk format) with an
untrained model of the demo architecture, so the timings are those of real encoding, FAISS
search and ROAM re-rank; only the ranking quality is meaningless. Prints, never asserts.

    .venv/bin/python bench/bench_serving.py --sizes 10000 100000 --kinds exact ivf hnsw
    .venv/bin/python bench/bench_serving.py --sizes 1000000 --kinds ivf exact
    .venv/bin/python bench/bench_serving.py --family dual --sizes 100000 --kinds hnsw ivf

``--family dual`` serves a dual champion instead: the dual-cpu architecture (EfficientNet-Lite2
image tower, MiniLM text tower, D=512, fresh projection heads) over an archive whose re-rank
arrays are zero-width, searched single-stage (its "rerank" column reads 0.0: no such step).

Server columns are per level (the /metrics difference across it): mean ms a query per step
(a batch's step time counts once for each query in it) and mean queries per search batch.
"client CPU %" is the load generator's own use of one core (near 100, it would be what limits
the level).

The load generator runs on the same machine as the server (2 cores shared): the QPS figures
are a floor for a dedicated server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pandas as pd
import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dove_model.config import FamilySettings, IndexParams, load_params
from dove_model.index.archive import write_archive
from dove_model.index.encoder import ImageArrays
from dove_model.model.directory import model_fingerprint
from dove_model.serving.launch import serving_env, start_service
from dove_model.testing.deployment import (
    SCENES,
    random_archive,
    tiny_model_dir,
    untrained_dual_model_dir,
)

PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
WORDS = ["blue", "lake", "green", "farmland", "city", "grey", "roads", "desert", "dunes"]


def build_archive(
    folder: Path, model_dir: Path, n: int, dim: int, kind: str, family: str = "dove"
) -> float:
    """Write an index folder of ``n`` random images; returns the build time in seconds."""
    arrays = random_archive(n, dim)
    if family == "dual":  # no re-rank arrays: zero width, as a dual model's index holds them
        empty = np.zeros((n, 0), np.float16)
        arrays = ImageArrays(v_m=arrays.v_m, v_mr=empty, r=empty)
    images = pd.DataFrame({"image_id": [f"img{i}" for i in range(n)]})
    images["path"] = images["image_id"] + ".png"
    images["label"] = pd.array([None] * n, dtype="string")
    captions = pd.DataFrame({"caption": ["a lake"], "image_row": [0]})
    if kind == "exact":
        params = IndexParams(exact_max=n)
    else:
        params = IndexParams(exact_max=0, approximate=kind)  # type: ignore[arg-type]
    start = time.perf_counter()
    write_archive(
        folder,
        arrays=arrays,
        images=images,
        captions=captions,
        caption_embeddings=np.asarray(arrays.v_m[:1], np.float32),
        params=params,
        meta={"family": family, "model_fingerprint": model_fingerprint(model_dir), "model": {}},
    )
    return time.perf_counter() - start


async def run_level(url: str, concurrency: int, total: int, seed: int) -> tuple[list[float], float]:
    """``total`` searches from ``concurrency`` clients; (latencies, wall seconds).

    aiohttp, not httpx: at concurrency 32 httpx used ~90% of a core of this 2-core machine
    and became the bottleneck; aiohttp uses ~10%."""
    rng = random.Random(seed)
    queries = [" ".join(rng.sample(WORDS, 4)) for _ in range(total)]
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:

        async def worker(mine: list[str]) -> None:
            for query in mine:
                start = time.perf_counter()
                async with client.post("/search_images", json={"query": query, "k": 10}) as r:
                    r.raise_for_status()
                    await r.read()
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker(queries[i::concurrency]) for i in range(concurrency)))
        wall = time.perf_counter() - start
    return latencies, wall


def client_cpu_seconds() -> float:
    """CPU seconds (user + system) this load generator has used."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def server_totals(url: str) -> dict[str, float]:
    """Text -> image totals from /metrics: seconds and counts per step, batches and queries."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name not in ("dove_search_step_seconds", "dove_search_batch_size"):
            continue
        for sample in family.samples:
            if sample.labels.get("direction") != "text_to_image":
                continue
            suffix = sample.name.rsplit("_", 1)[-1]
            if suffix in ("sum", "count"):
                key = sample.labels.get("step", "batch")
                totals[f"{key}_{suffix}"] = sample.value
    return totals


def level_summary(before: dict[str, float], after: dict[str, float]) -> str:
    """Mean server ms per query for each step, and mean batch size, over one level only."""

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    steps = ("encode", "candidate_search", "rerank")
    means = [1000 * delta(f"{s}_sum") / max(delta(f"{s}_count"), 1) for s in steps]
    batch = delta("batch_sum") / max(delta("batch_count"), 1)
    return "/".join(f"{v:.1f}" for v in means) + f"  {batch:5.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--kinds", nargs="+", default=["exact", "hnsw"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=400, help="per concurrency level")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="BentoML worker processes (default: the service's own setting)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="request threads per worker (default: the service's own setting)",
    )
    parser.add_argument(
        "--family",
        choices=["dove", "dual"],
        default="dove",
        help="the champion's model family (dual: the dual-cpu architecture, single-stage)",
    )
    parser.add_argument(
        "--text-depth",
        type=int,
        default=None,
        help="dual only: keep the first k MiniLM layers (model.text_depth; default: the profile's)",
    )
    parser.add_argument(
        "--tower-precision",
        choices=["auto", "float32", "bfloat16"],
        default=None,
        help="dual only: serve.tower_precision (default: the project's params.yaml)",
    )
    args = parser.parse_args()
    run(args)


def champion_architecture(family: str, text_depth: int | None = None) -> tuple[FamilySettings, int]:
    """The model section and eval size the benchmark serves: the project's ``demo`` profile
    for DOVE (EfficientNet-Lite0, D=256), ``dual-cpu`` for the dual family."""
    params = load_params(PROJECT_PARAMS)
    profile = "dual-cpu" if family == "dual" else "demo"
    params = params.model_copy(
        update={"train": params.train.model_copy(update={"profile": profile})}
    )
    model = params.model_for_training()
    if text_depth is not None:
        model = model.model_copy(update={"text_depth": text_depth})
    return model, params.train.active.eval_size


def make_model(family: str, target: Path, text_depth: int | None = None) -> tuple[Path, int]:
    """An untrained champion of ``family``; returns its directory and embedding size."""
    model, eval_size = champion_architecture(family, text_depth)
    depth = f", text depth {model.text_depth or 'all'}" if family == "dual" else ""
    print(f"model: untrained {family} {model.backbone}, D={model.embed_dim}{depth}; "
          "candidates_k=100, k=10")  # fmt: skip
    if family == "dual":
        return untrained_dual_model_dir(target, model, eval_size), model.embed_dim
    captions = [c for _, c in SCENES.values()] + [" ".join(WORDS)]
    return tiny_model_dir(target, captions, model=model, eval_size=eval_size), model.embed_dim


def serving_params(work: Path, tower_precision: str | None) -> Path:
    """The project's params.yaml, with ``serve.tower_precision`` set when given."""
    raw = yaml.safe_load(PROJECT_PARAMS.read_text())
    if tower_precision is not None:
        raw.setdefault("serve", {})["tower_precision"] = tower_precision
    print(f"serve.tower_precision: {raw.get('serve', {}).get('tower_precision', 'auto')}")
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        model_dir, dim = make_model(args.family, work / "model", args.text_depth)
        params_file = serving_params(work, args.tower_precision)
        print(
            "size     index  build_s  c   p50_ms  p99_ms    QPS  "
            "server encode/search/rerank ms  batch  client_cpu_%"
        )
        for n in args.sizes:
            for kind in args.kinds:
                index_dir = work / f"index-{n}-{kind}"
                build_s = build_archive(index_dir, model_dir, n, dim, kind, args.family)
                env = serving_env(model_dir=model_dir, index_dir=index_dir,
                                  bentoml_home=work / "bentoml",
                                  params_file=params_file)  # fmt: skip
                env.pop("DOVE_API_KEY", None)
                overrides = {"workers": args.workers, "threads": args.threads}
                overrides = {key: value for key, value in overrides.items() if value}
                if overrides:
                    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps(
                        {"services": {"dove-retrieval": overrides}}
                    )
                service = start_service(env, log_file=work / "serve.log")
                try:
                    service.wait_ready(timeout=600)
                    asyncio.run(run_level(service.url, 4, 40, seed=0))  # warm-up
                    for c in args.concurrency:
                        before = server_totals(service.url)
                        cpu_before = client_cpu_seconds()
                        lat, wall = asyncio.run(run_level(service.url, c, args.requests, seed=c))
                        client_cpu = 100 * (client_cpu_seconds() - cpu_before) / wall
                        ms = np.array(lat) * 1000
                        steps = level_summary(before, server_totals(service.url))
                        print(
                            f"{n:<8} {kind:<6} {build_s:7.1f} {c:>3} {np.percentile(ms, 50):7.1f} "
                            f"{np.percentile(ms, 99):7.1f} {len(lat) / wall:6.1f}  {steps}  "
                            f"{client_cpu:6.0f}",
                            flush=True,
                        )
                finally:
                    service.stop()
                shutil.rmtree(index_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
