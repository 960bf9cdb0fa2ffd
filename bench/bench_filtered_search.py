"""Filtered search at archive scale (issue 28): p50 latency under a bbox filter that keeps 1 %
and 0.01 % of the chips, next to unfiltered search, and recall of the filtered top-k against
exact filtered search.

Data: N synthetic chips. Vectors: unit vectors from bench_compressed's mixture of Gaussians
(N / 1000 centres; closer to real embeddings than uniform noise), stored as float16 (the
service's ``v_m.npy``) and indexed from the same values by the service's index builder
(``build_vector_index``, params.yaml's knobs: exact up to ``index.exact_max``, else HNSW or
IVF). Footprints: a grid of 0.01 degree chips (sqrt(N) columns) in EPSG:4326, in the service's
``GeoRows`` (STRtree). Each query gets a box at a random place of the grid covering the wanted
share of chips (reported: the rows it actually allows); the mask is computed by the service's
``image_mask`` and the candidates by its ``filtered_search`` (K candidates, as the service
asks before its re-rank; top-k recall on the first k). Unfiltered: the index's own search.
Ground truth: exact inner products over the allowed rows. One FAISS thread, one query at a
time, as a replica's worker searches. Prints a table; never asserts.

    .venv/bin/python bench/bench_filtered_search.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import geopandas as gpd
import numpy as np
import shapely
from bench_compressed import dataset

from dove_model.config import IndexParams, load_params
from dove_model.index.filtered import filtered_search, is_selective
from dove_model.index.geo_filter import GeoRows, image_mask, parse_filter
from dove_model.index.vectors import build_vector_index, choose_kind

REPO = Path(__file__).resolve().parents[1]
CELL = 0.01  # degrees: a chip's side on the synthetic grid


@dataclass(frozen=True)
class Grid:
    """N chips laid out row by row, ``columns`` a row, from (0 E, 0 N)."""

    n: int
    columns: int

    @classmethod
    def of(cls, n: int) -> Grid:
        return cls(n, math.ceil(math.sqrt(n)))

    @property
    def rows(self) -> int:
        return math.ceil(self.n / self.columns)

    def footprints(self) -> gpd.GeoDataFrame:
        i = np.arange(self.n)
        x, y = (i % self.columns) * CELL, (i // self.columns) * CELL
        boxes = shapely.box(x, y, x + CELL, y + CELL)
        return gpd.GeoDataFrame(
            {"datetime": [None] * self.n, "datetime_end": [None] * self.n},
            geometry=boxes,
            crs="EPSG:4326",
        )

    def box_for(self, share: float, rng: np.random.Generator) -> list[float]:
        """A bbox over about ``share`` of the chips (whole cells, inset from their edges),
        at a random place of the full rows."""
        want = max(1, round(share * self.n))
        high = max(1, math.floor(math.sqrt(want)))
        wide = min(self.columns, math.ceil(want / high))
        col = int(rng.integers(0, self.columns - wide + 1))
        row = int(rng.integers(0, self.n // self.columns - high + 1))
        eps = CELL * 1e-3
        return [
            col * CELL + eps,
            row * CELL + eps,
            (col + wide) * CELL - eps,
            (row + high) * CELL - eps,
        ]


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray) -> np.ndarray:
    """Ground truth: the ``k`` largest inner products among the ``allowed`` rows."""
    scores = vectors[allowed] @ query
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return allowed[top[np.argsort(-scores[top], kind="stable")]]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top rows found (fewer than k true rows when the filter allows less)."""
    return len(set(found.tolist()) & set(truth.tolist())) / max(1, len(truth))


@dataclass
class Timed:
    """Per query: mask and search milliseconds, recall@k, rows allowed."""

    mask_ms: list[float] = field(default_factory=list)
    search_ms: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)
    allowed: list[int] = field(default_factory=list)

    def cells(self, n: int) -> str:
        total = np.add(self.mask_ms, self.search_ms) if self.mask_ms else self.search_ms
        mask = f"{np.percentile(self.mask_ms, 50):.2f}" if self.mask_ms else "-"
        return (
            f"{np.mean(self.allowed) / n:.2%} ({np.mean(self.allowed):,.0f}) | {mask} "
            f"| {np.percentile(self.search_ms, 50):.2f} | {np.percentile(total, 50):.2f} "
            f"| {np.percentile(total, 99):.2f} | {np.mean(self.recalls):.3f}"
        )


@dataclass(frozen=True)
class Archive:
    vectors: np.ndarray  # float16, what the service memory-maps (v_m.npy)
    exact: np.ndarray  # the same values as float32, for the ground truth
    queries: np.ndarray
    grid: Grid
    rows: GeoRows


def unfiltered(index: faiss.Index, archive: Archive, k: int, want: int) -> Timed:
    timed = Timed()
    truth = np.argsort(-(archive.queries @ archive.exact.T), axis=1)[:, :k]
    for query, best in zip(archive.queries, truth, strict=True):
        start = time.perf_counter()
        ids = index.search(query[None, :], want)[1]
        timed.search_ms.append((time.perf_counter() - start) * 1000)
        timed.recalls.append(recall(ids[0, :k], best))
        timed.allowed.append(len(archive.vectors))
    return timed


def filtered(index: faiss.Index, archive: Archive, share: float, k: int, want: int) -> Timed:
    timed = Timed()
    rng = np.random.default_rng(int(share * 1e6))
    for query in archive.queries:
        where = parse_filter(archive.grid.box_for(share, rng), None, None)
        start = time.perf_counter()
        allowed = np.flatnonzero(image_mask(archive.rows, where))
        masked = time.perf_counter()
        ids = filtered_search(index, archive.vectors, query, want, allowed)[1]
        done = time.perf_counter()
        timed.mask_ms.append((masked - start) * 1000)
        timed.search_ms.append((done - masked) * 1000)
        best = exact_top(archive.exact, query, k, allowed)
        timed.recalls.append(recall(ids[0, :k], best))
        timed.allowed.append(len(allowed))
    return timed


def path_of(index: faiss.Index, n_allowed: int) -> str:
    if isinstance(index, faiss.IndexFlat):
        return "flat + selector"
    return "brute force" if is_selective(n_allowed, index.ntotal) else "index + selector"


def make_archive(n: int, args: argparse.Namespace) -> Archive:
    data, queries = dataset(n, args.dim, args.queries)
    vectors = data.astype(np.float16)
    del data
    grid = Grid.of(n)
    return Archive(vectors, vectors.astype(np.float32), queries, grid, GeoRows(grid.footprints()))


def bench_size(n: int, args: argparse.Namespace, params: IndexParams) -> None:
    start = time.perf_counter()
    archive = make_archive(n, args)
    print(
        f"\nN = {n:,} chips ({archive.grid.columns} x {archive.grid.rows} grid), D = {args.dim}, "
        f"{args.queries} queries, K = {args.candidates} candidates, recall@{args.k}; "
        f"data + footprints {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    print("| index | build s | filter | share (rows) | mask p50 ms | search p50 ms "
          "| total p50 ms | total p99 ms | recall@k | path |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for kind in args.kinds or [choose_kind(n, params)]:
        faiss.omp_set_num_threads(args.build_threads)
        begun = time.perf_counter()
        index = build_vector_index(archive.exact, params, kind)
        built = time.perf_counter() - begun
        faiss.omp_set_num_threads(1)  # searches: one thread, as a replica's worker
        label = f"{kind} ({index_name(index)})"
        plain = unfiltered(index, archive, args.k, args.candidates)
        print(f"| {label} | {built:.0f} | none | {plain.cells(n)} | index |", flush=True)
        for share in args.shares:
            timed = filtered(index, archive, share, args.k, args.candidates)
            path = path_of(index, int(np.mean(timed.allowed)))
            print(f"| {label} | | bbox {share:.2%} | {timed.cells(n)} | {path} |", flush=True)
        del index


def index_name(index: faiss.Index) -> str:
    return type(faiss.downcast_index(index)).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.01, 0.0001, 0.25])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=100, help="K (serve.candidates_k)")
    parser.add_argument(
        "--kinds", nargs="+", choices=("exact", "ivf", "hnsw", "ivf_pq", "hnsw_sq8"),
        help="index kinds (default: the one the service's builder picks for N)",
    )  # fmt: skip
    parser.add_argument("--build-threads", type=int, default=faiss.omp_get_max_threads())
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml").index
    for n in args.sizes:
        bench_size(n, args, params)


if __name__ == "__main__":
    main()
