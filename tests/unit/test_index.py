"""FAISS indexes and the archive folder: kinds, recall against brute force, round trip,
memory maps, and the model-fingerprint check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dove_model.config import IndexParams
from dove_model.errors import ConfigError, DataFormatError
from dove_model.index.archive import IndexMismatchError, load_archive, write_archive
from dove_model.index.build import resolve_source
from dove_model.index.vectors import build_vector_index, choose_kind, index_kind, search
from dove_model.testing.deployment import random_archive, scene_image, synthetic_dataset


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_kind_follows_exact_max() -> None:
    params = IndexParams(exact_max=100, approximate="ivf")
    assert choose_kind(100, params) == "exact"
    assert choose_kind(101, params) == "ivf"


def test_exact_index_matches_brute_force() -> None:
    data, queries = unit_rows(2000, 32), unit_rows(20, 32, seed=1)
    scores, ids = search(build_vector_index(data, IndexParams(), "exact"), queries, 10)
    expected = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores[:, 0], (queries @ data.T).max(axis=1), rtol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_recalls_the_true_neighbours(kind: str) -> None:
    rng = np.random.default_rng(3)  # clustered, as real embeddings are
    data = unit_rows(64, 32)[rng.integers(0, 64, 5000)] + 0.3 * unit_rows(5000, 32, seed=4)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[:50] + 0.05 * unit_rows(50, 32, seed=2)
    params = IndexParams(ivf_nlist=64, ivf_nprobe=8)
    index = build_vector_index(data, params, kind)  # type: ignore[arg-type]
    assert index_kind(index) == kind
    _, ids = search(index, queries, 10)
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)])
    assert recall >= 0.8, f"{kind} recall@10 {recall:.2f}"


def write_random_archive(folder: Path, n: int = 300, dim: int = 16) -> Path:
    arrays = random_archive(n, dim)
    images = pd.DataFrame(
        {"image_id": [f"img{i}" for i in range(n)], "path": [f"{i}.png" for i in range(n)]}
    ).assign(label=pd.array([None] * n, dtype="string"))
    captions = pd.DataFrame({"caption": ["a b"] * 3, "image_row": [0, 1, 2]})
    return write_archive(
        folder,
        arrays=arrays,
        images=images,
        captions=captions,
        caption_embeddings=unit_rows(3, dim),
        params=IndexParams(exact_max=100, approximate="hnsw"),
        meta={"model_fingerprint": "a" * 64},
    )


def test_archive_round_trip_is_memory_mapped_float16(tmp_path: Path) -> None:
    folder = write_random_archive(tmp_path / "index")
    archive = load_archive(folder, IndexParams())
    assert archive.n_images == 300 and archive.n_captions == 3
    assert archive.meta["image_index"] == "hnsw" and archive.meta["caption_index"] == "exact"
    assert isinstance(archive.arrays.v_mr, np.memmap) and archive.arrays.v_mr.dtype == np.float16
    rows = np.array([5, 2])
    picked = archive.rerank_arrays(rows)
    assert picked.v_m.dtype == np.float32 and picked.v_m.shape == (2, 16)
    np.testing.assert_array_equal(picked.r, np.asarray(archive.arrays.r[rows], np.float32))
    assert not list(tmp_path.glob(".index*")), "no temporary folder left behind"


def test_index_refuses_another_model(tmp_path: Path) -> None:
    archive = load_archive(write_random_archive(tmp_path / "index"), IndexParams())
    archive.check_model("a" * 64)
    with pytest.raises(IndexMismatchError, match=r"meta\.json: index was built by model aaaa"):
        archive.check_model("b" * 64)


def test_missing_or_broken_metadata_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="index metadata not found"):
        load_archive(tmp_path, IndexParams())
    folder = write_random_archive(tmp_path / "index")
    (folder / "meta.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"meta.json:1: not valid JSON"):
        load_archive(folder, IndexParams())
    (folder / "meta.json").write_text(json.dumps({"format_version": 99}), encoding="utf-8")
    with pytest.raises(ConfigError, match="format version"):
        load_archive(folder, IndexParams())


def test_sources_dataset_and_plain_folder(tmp_path: Path) -> None:
    dataset = resolve_source(synthetic_dataset(tmp_path / "ds", per_scene=2))
    assert dataset.kind == "dataset" and len(dataset.images) == 8
    assert len(dataset.captions) == 16
    assert dataset.captions["image_row"].max() == 7
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    scene_image("lake", 0).save(tmp_path / "folder" / "sub" / "a.png")
    scene_image("city", 1).save(tmp_path / "folder" / "b.jpg")
    (tmp_path / "folder" / "notes.txt").write_text("not an image")
    folder = resolve_source(tmp_path / "folder")
    assert folder.kind == "folder" and folder.images["path"].tolist() == ["b.jpg", "sub/a.png"]
    assert folder.captions.empty
    with pytest.raises(DataFormatError, match="no image files"):
        resolve_source(tmp_path / "ds" / "images" / "..", splits=["train"])
    with pytest.raises(DataFormatError, match="neither a prepared dataset"):
        resolve_source(tmp_path / "missing")
