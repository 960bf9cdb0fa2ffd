"""The index records the model family (older indexes: dove), refuses another family or model,
and a single-stage (dual) encoder is served without a re-rank, through build, shards and add."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dove_model.config import IndexParams, Params
from dove_model.index.archive import IndexMismatchError, load_archive, write_archive
from dove_model.index.build import build_index_with
from dove_model.index.incremental import RebuildNeededError, update_index_with
from dove_model.index.shards import ShardSpec, build_shard_with, merge_shards
from dove_model.model.encoding import ImageParts, TextParts
from dove_model.serving.metrics import StepMetrics
from dove_model.serving.search import Searcher
from dove_model.testing.deployment import random_archive, synthetic_dataset

DIM = 8


class ColourDual:
    """A stand-in dual encoder: images by mean colour, texts by their words' hashes (the API
    of ``DualEncoder``: zero-width re-rank arrays, cosine of the global vectors)."""

    family = "dual"
    single_stage = True
    fingerprint = "d" * 64
    params = None

    def __init__(self) -> None:
        self.texts_encoded = 0
        self.projection = np.random.default_rng(0).standard_normal((3, DIM)).astype(np.float32)

    def encode_images(self, images: list[Image.Image]) -> ImageParts:
        means = np.array([np.asarray(i, np.float32).mean(axis=(0, 1)) for i in images])
        v_m = _unit(means.reshape(-1, 3) @ self.projection)
        empty = np.zeros((len(v_m), 0), np.float32)
        return ImageParts(v_m=v_m, v_mr=empty, r=empty.copy())

    def encode_texts(self, texts: list[str]) -> TextParts:
        self.texts_encoded += len(texts)
        rows = [
            sum(_word(w) for w in t.lower().split()) + np.full(DIM, 1e-3, np.float32) for t in texts
        ]
        t_g = _unit(np.array(rows, np.float32).reshape(-1, DIM))
        return TextParts(t_g=t_g, words=np.zeros((len(t_g), 0, DIM)), mask=np.zeros((len(t_g), 0)))

    def global_score(self, images: Any, texts: Any) -> np.ndarray:
        return np.asarray(images.v_m, np.float32) @ np.asarray(texts.t_g, np.float32).T

    score = global_score

    def score_text_candidates(self, images: Any, texts: Any, candidates: Any) -> np.ndarray:
        raise AssertionError("a single-stage search must not re-rank")

    def unknown_words(self, text: str) -> list[str]:
        return []


def _word(word: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(DIM).astype(np.float32)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def write_random_archive(folder: Path, n: int = 20) -> Path:
    images = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)]})
    images = images.assign(path=images["image_id"] + ".png", label=pd.NA)
    return write_archive(
        folder,
        arrays=random_archive(n, DIM),
        images=images,
        captions=pd.DataFrame({"caption": ["a b"], "image_row": [0]}),
        caption_embeddings=_unit(np.ones((1, DIM), np.float32)),
        params=IndexParams(),
        meta={"model_fingerprint": "a" * 64},
    )


@pytest.fixture(scope="module")
def dual_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("family")
    dataset = synthetic_dataset(root / "dataset", per_scene=3, size=32)
    return dataset, build_index_with(
        ColourDual(), dataset, Params(), root / "index", progress=False
    )


def test_a_dual_index_records_its_family_and_stores_no_rerank_bytes(
    dual_index: tuple[Path, Path],
) -> None:
    _, folder = dual_index
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["family"] == "dual" and meta["model_fingerprint"] == "d" * 64
    archive = load_archive(folder, IndexParams())
    assert archive.family == "dual" and archive.n_images == 12 and archive.n_captions == 24
    assert archive.arrays.v_mr.shape == (12, 0) and archive.arrays.r.shape == (12, 0)
    assert (folder / "v_mr.npy").stat().st_size < 200  # a header only


def test_an_index_without_a_family_is_dove(tmp_path: Path) -> None:
    folder = write_random_archive(tmp_path / "index")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["family"] == "dove"  # written now: recorded
    del meta["family"]
    (folder / "meta.json").write_text(json.dumps(meta))  # as written before families existed
    archive = load_archive(folder, IndexParams())
    assert archive.family == "dove"
    archive.check_model("a" * 64)
    with pytest.raises(IndexMismatchError, match=r"built by a dove model \(aaaa.*a dual model"):
        archive.check_model("a" * 64, "dual")


def test_the_searcher_refuses_another_family_naming_both(dual_index: tuple[Path, Path]) -> None:
    archive = load_archive(dual_index[1], IndexParams())
    dove_like = ColourDual()
    dove_like.family, dove_like.single_stage = "dove", False  # type: ignore[misc]
    with pytest.raises(IndexMismatchError, match=r"built by a dual model \(dddd.*a dove model"):
        Searcher(dove_like, archive, candidates_k=5)  # type: ignore[arg-type]
    other = ColourDual()
    other.fingerprint = "e" * 64  # type: ignore[misc]
    with pytest.raises(IndexMismatchError, match="index was built by model dddd"):
        Searcher(other, archive, candidates_k=5)  # type: ignore[arg-type]


def test_single_stage_search_scores_are_the_index_scores(dual_index: tuple[Path, Path]) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    encoder = ColourDual()
    searcher = Searcher(
        encoder,  # type: ignore[arg-type]
        load_archive(dual_index[1], IndexParams()),
        candidates_k=5,
        metrics=StepMetrics(registry),
    )
    hits = searcher.search_images("a blue lake surrounded by land", 4)
    assert len(hits) == 4 and all(h.score == h.candidate_score for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    encoder.texts_encoded = 0
    lake = Image.new("RGB", (32, 32), (40, 80, 160))
    captions = searcher.search_texts(lake, 3)
    assert len(captions) == 3 and all(h.score == h.candidate_score for h in captions)
    assert encoder.texts_encoded == 0  # the candidate captions are not encoded again
    steps = {s.labels["step"] for f in registry.collect() for s in f.samples if "step" in s.labels}
    assert "rerank" not in steps and {"encode", "candidate_search"} <= steps


def test_shards_merge_and_add_keep_the_family(
    dual_index: tuple[Path, Path], tmp_path: Path
) -> None:
    dataset, full = dual_index
    encoder = ColourDual()
    shards = [
        build_shard_with(encoder, dataset, Params(), tmp_path / f"s{i}", ShardSpec(i, 2),
                         progress=False)
        for i in range(2)
    ]  # fmt: skip
    assert all(json.loads((s / "shard.json").read_text())["family"] == "dual" for s in shards)
    merged = load_archive(merge_shards(shards, IndexParams(), tmp_path / "merged"), IndexParams())
    assert merged.family == "dual" and merged.arrays.v_mr.shape == (12, 0)
    one = load_archive(full, IndexParams())
    np.testing.assert_array_equal(merged.arrays.v_m, one.arrays.v_m)
    report = update_index_with(encoder, full, dataset, Params(), tmp_path / "added", progress=False)
    assert report.kept == 12 and report.added == 0
    added = load_archive(tmp_path / "added", IndexParams())
    assert added.family == "dual" and added.arrays.r.shape == (12, 0)


def test_add_encodes_new_images_with_zero_width_arrays(tmp_path: Path) -> None:
    small = synthetic_dataset(tmp_path / "small", per_scene=1, size=32)
    grown = synthetic_dataset(tmp_path / "grown", per_scene=2, size=32)
    encoder = ColourDual()
    folder = build_index_with(encoder, small, Params(), tmp_path / "index", progress=False)
    report = update_index_with(encoder, folder, grown, Params(), tmp_path / "out", progress=False)
    assert (report.added, report.kept) == (4, 4)
    assert load_archive(tmp_path / "out", IndexParams()).arrays.v_mr.shape == (8, 0)
    dove_like = ColourDual()
    dove_like.family = "dove"  # type: ignore[misc]
    with pytest.raises(RebuildNeededError, match=r"built by dual model dddd.* is dove model dddd"):
        update_index_with(dove_like, folder, grown, Params(), tmp_path / "x", progress=False)


def test_a_single_stage_model_rescores_a_compressed_indexs_candidates_exactly(
    tmp_path: Path,
) -> None:
    """hnsw_sq8 / ivf_pq scores are approximate: a dual model's final scores are the exact
    cosines of the stored image vectors (FAISS still picks the candidates)."""
    dataset = synthetic_dataset(tmp_path / "dataset", per_scene=3, size=32)
    params = Params(index=IndexParams(exact_max=1, approximate="hnsw_sq8"))
    encoder = ColourDual()
    folder = build_index_with(encoder, dataset, params, tmp_path / "index", progress=False)
    archive = load_archive(folder, params.index)
    searcher = Searcher(encoder, archive, candidates_k=12)  # type: ignore[arg-type]
    assert searcher.exact_rescore
    query = "a blue lake surrounded by land"
    hits = searcher.search_images(query, 5)
    text = encoder.encode_texts([query]).t_g[0]
    stored = np.asarray(archive.arrays.v_m, np.float32)
    exact = [float(stored[h.row] @ text) for h in hits]
    assert [h.score for h in hits] == pytest.approx(exact, abs=1e-5)
    assert exact == sorted(exact, reverse=True)
