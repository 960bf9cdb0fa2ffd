"""The capacity table in docs/deploy.md: recomputed from the formula, the formula from FAISS."""

from __future__ import annotations

import re
from pathlib import Path

import faiss
import numpy as np
import pytest

from dove_model.config import load_params

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = REPO_ROOT / "docs" / "deploy.md"
RERANK_ARRAYS = 3  # V_M, V_MR, r at float16
HNSW_OVERHEAD = 16  # levels and offsets, bytes per vector (measured below)


def bytes_per_image(dim: int, kind: str, hnsw_m: int) -> int:
    rerank = RERANK_ARRAYS * dim * 2
    flat = dim * 4
    return rerank + flat + (2 * hnsw_m * 4 + HNSW_OVERHEAD if kind == "HNSW" else 0)


def parse_size(text: str) -> float:
    value, unit = text.split()
    return float(value) * {"MB": 1e6, "GB": 1e9}[unit]


def table_rows() -> list[tuple[int, str, float, float]]:
    rows = re.findall(
        r"^\| ([\d,]+) \| (flat|HNSW) \| ([\d.]+ [MG]B) \| ([\d.]+ [MG]B) \|$",
        GUIDE.read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    return [(int(n.replace(",", "")), k, parse_size(a), parse_size(b)) for n, k, a, b in rows]


def test_the_capacity_table_follows_the_formula_and_params() -> None:
    index = load_params(REPO_ROOT / "params.yaml").index
    rows = table_rows()
    assert len(rows) >= 4
    for images, kind, full, demo in rows:
        assert kind == ("flat" if images <= index.exact_max else "HNSW"), images
        for dim, documented in ((512, full), (256, demo)):
            expected = images * bytes_per_image(dim, kind, index.hnsw_m)
            assert documented == pytest.approx(expected, rel=0.06), (images, dim)


@pytest.mark.parametrize("kind", ["flat", "HNSW"])
def test_faiss_memory_per_vector_matches_the_formula(kind: str) -> None:
    faiss.omp_set_num_threads(1)
    hnsw_m = load_params(REPO_ROOT / "params.yaml").index.hnsw_m
    dim, count = 512, 1500
    vectors = np.random.default_rng(0).standard_normal((count, dim)).astype(np.float32)
    index = (
        faiss.IndexFlatIP(dim)
        if kind == "flat"
        else faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    )
    index.add(vectors)
    measured = faiss.serialize_index(index).nbytes / count
    formula = bytes_per_image(dim, kind, hnsw_m) - RERANK_ARRAYS * dim * 2
    assert measured == pytest.approx(formula, rel=0.03)
