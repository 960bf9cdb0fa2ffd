"""Compressed archive indexes vs exact search (issue 14): memory, recall and latency per kind.

Data: N unit vectors from a mixture of Gaussians on the sphere (N / 1000 centres, each point a
centre plus isotropic noise, cosine to its centre ~0.78), which is closer to real image
embeddings than uniform random vectors (those have no neighbours worth the name). Queries are
fresh draws from the same mixture. Ground truth: exact top-100 by ``IndexFlatIP``.

For each kind, built by the project's ``build_vector_index`` with params.yaml's knobs: build
time (all threads), index bytes (``faiss.serialize_index``), recall@10 and recall@100 against
exact, and p50 / p99 single-query latency (k = 100) on one thread. ``--memory`` instead
measures bytes per vector at D = 256 and 512 as the slope of the serialised size between two
archive sizes (fixed parts such as centroids and codebooks drop out). Prints, never asserts.

    .venv/bin/python bench/bench_compressed.py --n 1000000 --dim 256
    .venv/bin/python bench/bench_compressed.py --memory
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import faiss
import numpy as np

from dove_model.config import IndexParams, load_params
from dove_model.index.vectors import build_vector_index

KINDS = ("exact", "ivf", "hnsw", "ivf_pq", "hnsw_sq8")
REPO = Path(__file__).resolve().parents[1]


def mixture(n: int, dim: int, seed: int, centres: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors, each a random centre plus Gaussian noise, normalised."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) * (0.8 / dim**0.5)
        block = centres[rng.integers(0, len(centres), stop - start)] + noise
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def dataset(n: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((max(1, n // 1000), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return mixture(n, dim, 1, centres), mixture(queries, dim, 2, centres)


def recall(ids: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = [len(set(a[:k]) & set(b[:k])) for a, b in zip(ids, truth, strict=True)]
    return float(np.mean(hits)) / k


def latencies_ms(index: faiss.Index, queries: np.ndarray, k: int) -> np.ndarray:
    """One query at a time on one thread, as a replica's worker searches."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    times = []
    for row in queries:
        start = time.perf_counter()
        index.search(row[None, :], k)
        times.append((time.perf_counter() - start) * 1000)
    faiss.omp_set_num_threads(threads)
    return np.array(times)


def bench_kind(
    kind: str,
    data: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    params: IndexParams,
    latency_queries: int,
) -> dict[str, float | str]:
    start = time.perf_counter()
    index = build_vector_index(data, params, kind)  # type: ignore[arg-type]
    build_s = time.perf_counter() - start
    size = faiss.serialize_index(index).nbytes
    ids = index.search(queries, 100)[1]
    lat = latencies_ms(index, queries[:latency_queries], 100)
    del index
    return {
        "kind": kind,
        "build_s": build_s,
        "bytes": size,
        "bytes_per_vector": size / len(data),
        "recall@10": recall(ids, truth, 10),
        "recall@100": recall(ids, truth, 100),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def run_search_bench(args: argparse.Namespace, params: IndexParams) -> None:
    start = time.perf_counter()
    data, queries = dataset(args.n, args.dim, args.queries)
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(data)
    truth = exact.search(queries, 100)[1]
    del exact
    print(
        f"N = {args.n:,}, D = {args.dim}, {args.queries} queries "
        f"(latency: first {args.latency_queries}), {faiss.omp_get_max_threads()} threads; "
        f"data + ground truth {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    print("| kind | build | index bytes | bytes / vector | recall@10 | recall@100 | p50 | p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in args.kinds:
        row = bench_kind(kind, data, queries, truth, params, args.latency_queries)
        print(
            f"| {kind} | {row['build_s']:.0f} s | {row['bytes'] / 1e6:,.0f} MB "
            f"| {row['bytes_per_vector']:,.0f} | {row['recall@10']:.3f} "
            f"| {row['recall@100']:.3f} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms |",
            flush=True,
        )


def run_memory_bench(params: IndexParams, sizes: tuple[int, int]) -> None:
    """Bytes per vector = slope of the serialised size between two archive sizes."""
    fixed = params.model_copy(update={"ivf_nlist": 256})  # same lists at both sizes
    print("| kind | D | bytes / vector | MB per million images |")
    print("|---|---:|---:|---:|")
    for dim in (256, 512):
        small, large = (dataset(n, dim, 1)[0] for n in sizes)
        for kind in KINDS:
            a, b = (
                faiss.serialize_index(build_vector_index(x, fixed, kind)).nbytes  # type: ignore[arg-type]
                for x in (small, large)
            )
            per = (b - a) / (sizes[1] - sizes[0])
            print(f"| {kind} | {dim} | {per:,.0f} | {per:,.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--memory", action="store_true", help="bytes per vector, D = 256, 512")
    parser.add_argument("--threads", type=int, default=0, help="FAISS threads (0: all cores)")
    args = parser.parse_args()
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    params = load_params(REPO / "params.yaml").index
    if args.memory:
        run_memory_bench(params, (20_000, 60_000))
    else:
        run_search_bench(args, params)


if __name__ == "__main__":
    main()
