"""Compressed archive indexes (issue 14): ``ivf_pq`` (product-quantised codes) and ``hnsw_sq8``
(HNSW over 8-bit scalar-quantised vectors) build, save, load, tune and recall, through the
vector layer, the archive folder and ``dove index add``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest
import torch

from dove_model.config import IndexParams, Params
from dove_model.errors import ConfigError
from dove_model.families.dove.inference import DoveEncoder
from dove_model.index import build_index_with, load_archive
from dove_model.index.archive import write_archive
from dove_model.index.incremental import update_index_with
from dove_model.index.vectors import (
    build_vector_index,
    index_kind,
    is_compressed,
    load_vector_index,
    save_vector_index,
    search,
)
from dove_model.testing.deployment import SCENES, random_archive, synthetic_dataset, tiny_model_dir

KINDS = ("ivf_pq", "hnsw_sq8")
RECALL_FLOOR = {"ivf_pq": 0.6, "hnsw_sq8": 0.8}  # recall@10 vs exact, 5k x 64 clustered
PARAMS = IndexParams(ivf_nlist=64, ivf_nprobe=16, pq_m=16, hnsw_m=16, hnsw_ef_search=64)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """FAISS's k-means on 2 contended cores is ~5x slower with OpenMP than on one thread."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 50) -> np.ndarray:
    """Unit vectors from a mixture of Gaussians on the sphere (real embeddings cluster)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = centres[rng.integers(0, clusters, n)] + 0.8 * rng.standard_normal((n, dim)) / dim**0.5
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def recall_at(ids: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, truth, strict=True)]))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vectors = clustered(5000, 64)
    queries = clustered(100, 64, seed=1)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    return vectors, queries, truth


@pytest.mark.parametrize("kind", KINDS)
def test_builds_saves_loads_and_recalls(
    kind: str, data: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    vectors, queries, truth = data
    index = build_vector_index(vectors, PARAMS, kind)  # type: ignore[arg-type]
    assert index_kind(index) == kind and is_compressed(index) and index.ntotal == len(vectors)
    save_vector_index(index, tmp_path / "v.faiss")
    size = (tmp_path / "v.faiss").stat().st_size / len(vectors)
    assert size < 0.8 * 64 * 4 + 2 * PARAMS.hnsw_m * 4, f"{kind}: {size:.0f} B a vector"
    loaded = load_vector_index(tmp_path / "v.faiss", PARAMS)
    assert index_kind(loaded) == kind
    recall = recall_at(search(loaded, queries, 10)[1], truth)
    assert recall >= RECALL_FLOOR[kind], f"{kind} recall@10 {recall:.2f}"
    np.testing.assert_array_equal(search(index, queries, 10)[1], search(loaded, queries, 10)[1])


def test_search_knobs_are_applied_after_loading(tmp_path: Path) -> None:
    vectors = clustered(3000, 32, seed=2)
    tuned = IndexParams(ivf_nlist=32, ivf_nprobe=7, pq_m=8, hnsw_ef_search=77)
    for kind in KINDS:
        save_vector_index(build_vector_index(vectors, PARAMS, kind), tmp_path / kind)  # type: ignore[arg-type]
    ivf_pq = load_vector_index(tmp_path / "ivf_pq", tuned)
    hnsw_sq8 = load_vector_index(tmp_path / "hnsw_sq8", tuned)
    assert ivf_pq.nprobe == 7 and hnsw_sq8.hnsw.efSearch == 77


def test_pq_m_must_divide_the_dimension() -> None:
    with pytest.raises(ConfigError, match=r"pq_m = 48 does not divide .*dimension 64"):
        build_vector_index(clustered(500, 64), IndexParams(pq_m=48), "ivf_pq")


def test_a_small_archive_trains_fewer_pq_centroids() -> None:
    index = build_vector_index(clustered(200, 16), IndexParams(pq_m=4), "ivf_pq")
    assert index.pq.nbits == 2 and index.nlist == 5  # 200 rows: 39 a centroid
    assert search(index, clustered(3, 16, seed=5), 5)[1].shape == (3, 5)


def write_clustered_archive(folder: Path, kind: str, n: int = 400, dim: int = 32) -> Path:
    arrays = replace(random_archive(n, dim), v_m=clustered(n, dim).astype(np.float16))
    images = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "path": ["x.png"] * n})
    return write_archive(
        folder,
        arrays=arrays,
        images=images,
        captions=pd.DataFrame({"caption": ["a b"] * 3, "image_row": [0, 1, 2]}),
        caption_embeddings=clustered(3, dim, seed=3),
        params=IndexParams(exact_max=100, approximate=kind, ivf_nlist=8, pq_m=8),  # type: ignore[arg-type]
        meta={"model_fingerprint": "a" * 64},
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_archive_picks_the_kind_above_exact_max(kind: str, tmp_path: Path) -> None:
    archive = load_archive(write_clustered_archive(tmp_path / "index", kind), IndexParams())
    assert archive.meta["image_index"] == kind and archive.meta["caption_index"] == "exact"
    assert index_kind(archive.image_index) == kind
    queries = np.asarray(archive.arrays.v_m[:20], np.float32)
    top5 = search(archive.image_index, queries, 5)[1]
    assert np.mean([row in hits for row, hits in enumerate(top5)]) >= 0.9


@pytest.mark.parametrize("kind", KINDS)
def test_index_add_rebuilds_a_compressed_index_from_the_stored_embeddings(
    kind: str, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    captions = [c for _, c in SCENES.values()]
    model = tiny_model_dir(tmp_path / "model", [*captions, *(f"there is {c}" for c in captions)])
    small, grown = (synthetic_dataset(tmp_path / f"ds{n}", per_scene=n) for n in (2, 3))
    index = IndexParams(exact_max=4, approximate=kind, ivf_nlist=4, pq_m=8)  # type: ignore[arg-type]
    params = Params(index=index)
    encoder = DoveEncoder.from_dir(model)
    before = build_index_with(encoder, small, params, tmp_path / "before", progress=False)
    report = update_index_with(encoder, before, grown, params, tmp_path / "after", progress=False)
    full = build_index_with(encoder, grown, params, tmp_path / "full", progress=False)
    after, rebuilt = load_archive(report.folder, index), load_archive(full, index)
    assert report.added == len(SCENES) and after.meta["image_index"] == kind
    assert after.meta["caption_index"] == kind  # its codes are lossy: every text re-encoded
    assert report.captions_encoded == after.captions["caption"].nunique()
    np.testing.assert_allclose(
        np.asarray(after.arrays.v_m, np.float32), np.asarray(rebuilt.arrays.v_m), atol=2e-3
    )
    queries = np.asarray(rebuilt.arrays.v_m, np.float32)
    scores = search(after.image_index, queries, 5)[0]  # ids may swap among equal codes
    np.testing.assert_allclose(scores, search(rebuilt.image_index, queries, 5)[0], atol=0.02)
