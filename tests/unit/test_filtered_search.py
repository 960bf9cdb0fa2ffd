"""Exact top-k under a filter (issue 28): ``filtered_search`` against brute force over the
allowed rows for every index kind, and the searcher's filtered text->image and image->text
search with a real (untrained) DOVE model over a geo index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dove_model.config import IndexParams, Params
from dove_model.families.dove.inference import DoveEncoder
from dove_model.index import load_archive
from dove_model.index.build import build_index_with
from dove_model.index.encoder import ImageArrays
from dove_model.index.filtered import filtered_search, is_selective
from dove_model.index.geo_filter import GeoFilterError, parse_filter
from dove_model.index.vectors import build_vector_index
from dove_model.serving.search import Searcher
from dove_model.testing.deployment import SCENES, synthetic_dataset, tiny_model_dir
from dove_model.testing.geo_index import write_chips


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def truth(vectors: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray) -> list[int]:
    scores = vectors[allowed] @ query
    return allowed[np.argsort(-scores, kind="stable")[:k]].tolist()


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf", "hnsw_sq8"])
@pytest.mark.parametrize("share", [0.002, 0.05, 0.5])
def test_filtered_top10_is_brute_force_over_the_allowed_rows(kind: str, share: float) -> None:
    vectors = unit_rows(4000, 32, seed=1)
    index = build_vector_index(vectors, IndexParams(), kind)  # type: ignore[arg-type]
    rng = np.random.default_rng(2)
    for q in range(5):
        allowed = np.flatnonzero(rng.random(len(vectors)) < share)
        query = unit_rows(1, 32, seed=10 + q)[0]
        scores, ids = filtered_search(index, vectors.astype(np.float16), query, 10, allowed)
        assert ids.shape == (1, min(10, len(allowed)))  # never short
        assert set(ids[0]) <= set(allowed.tolist())
        assert np.all(np.diff(scores[0]) <= 1e-6)
        found = set(truth(vectors, query, 10, allowed)) & set(ids[0].tolist())
        if kind == "exact" or is_selective(len(allowed), len(vectors)):
            # recall 1.0: an exact index searches the allowed ids, an approximate one
            # brute-forces a selective filter's rows
            assert len(found) == ids.shape[1]
        else:  # a broad filter: the approximate index's own (filtered) search
            assert len(found) >= 0.6 * ids.shape[1]


def test_a_filter_allowing_nothing_or_fewer_than_k() -> None:
    vectors = unit_rows(100, 16, seed=3)
    index = build_vector_index(vectors, IndexParams(), "exact")
    _, ids = filtered_search(index, vectors, vectors[0], 10, np.array([], np.int64))
    assert ids.shape == (1, 0)
    _, ids = filtered_search(index, vectors, vectors[0], 10, np.array([5, 7, 9]))
    assert sorted(ids[0].tolist()) == [5, 7, 9]


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Searcher, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("filtered")
    captions = [c for _, c in SCENES.values()]
    model = tiny_model_dir(root / "model", [*captions, *(f"there is {c}" for c in captions)])
    dataset = synthetic_dataset(root / "ds", per_scene=4)
    write_chips(dataset)
    encoder = DoveEncoder.from_dir(model)
    index = build_index_with(encoder, dataset, Params(), root / "index", progress=False)
    archive = load_archive(index, Params().index)
    return Searcher(encoder, archive, candidates_k=archive.n_images), dataset


def test_filtered_text_search_equals_exhaustive_scoring_over_the_allowed_images(
    searcher: tuple[Searcher, Path],
) -> None:
    search, _ = searcher
    archive = search.archive
    mask = search.image_mask(parse_filter(bbox=[2.5, 40, 9.5, 50]))  # images 2..9 (0: lon -1..1)
    assert mask is not None and np.flatnonzero(mask).tolist() == list(range(2, 10))
    query = "a blue lake surrounded by land"
    everything = ImageArrays(
        *(np.asarray(getattr(archive.arrays, n), np.float32) for n in ("v_m", "v_mr", "r"))
    )
    exhaustive = search.encoder.score(everything, search.encoder.encode_texts([query]))[:, 0]
    allowed = np.flatnonzero(mask)
    expected = allowed[np.argsort(-exhaustive[allowed], kind="stable")[:5]]
    hits = search.search_images(query, 5, mask)
    assert [h.row for h in hits] == expected.tolist()
    np.testing.assert_allclose([h.score for h in hits], exhaustive[expected], atol=1e-5)
    # several queries in one batch, filtered and not
    batch = search.search_images_batch([(query, 5), (query, 5)], [mask, None])
    assert [h.row for h in batch[0]] == expected.tolist()
    assert [h.row for h in batch[1]] == [h.row for h in search.search_images(query, 5)]


def test_a_filter_matching_nothing_gives_no_hits(searcher: tuple[Searcher, Path]) -> None:
    search, dataset = searcher
    mask = search.image_mask(parse_filter(datetime_="2030-01-01T00:00:00Z/.."))
    assert mask is not None and not mask.any()
    assert search.search_images("a lake", 10, mask) == []
    with Image.open(next((dataset / "images").rglob("*.png"))) as img:
        assert search.search_texts(img.convert("RGB"), 5, mask) == []


def test_filtered_image_search_returns_captions_of_allowed_images(
    searcher: tuple[Searcher, Path],
) -> None:
    search, dataset = searcher
    mask = search.image_mask(parse_filter(intersects={"type": "Point", "coordinates": [3.5, 45.5]}))
    assert mask is not None and np.flatnonzero(mask).tolist() == [3]
    with Image.open(next((dataset / "images").rglob("*.png"))) as img:
        hits = search.search_texts(img.convert("RGB"), 5, mask)
    image_id = str(search.archive.images["image_id"].iloc[3])
    n_captions = int((search.archive.captions["image_row"] == 3).sum())
    assert len(hits) == min(5, n_captions) > 0 and {h.image_id for h in hits} == {image_id}


def test_an_index_without_geo_refuses_a_filter(
    searcher: tuple[Searcher, Path], tmp_path: Path
) -> None:
    search, _ = searcher
    plain = synthetic_dataset(tmp_path / "plain", per_scene=1)
    index = build_index_with(search.encoder, plain, Params(), tmp_path / "i", progress=False)
    bare = Searcher(search.encoder, load_archive(index, Params().index), candidates_k=4)
    assert bare.image_mask(parse_filter()) is None
    with pytest.raises(GeoFilterError, match="no geo metadata"):
        bare.image_mask(parse_filter(bbox=[0, 0, 1, 1]))


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_a_broad_filter_on_an_approximate_index_is_never_short(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the brute-force size the index's own filtered search runs; where it starves (a
    selective filter walking the graph) brute force takes over: k allowed rows either way."""
    import dove_model.index.filtered as filtered

    monkeypatch.setattr(filtered, "EXACT_SUBSET_ROWS", 0)  # the index's search at any size
    vectors = unit_rows(4000, 32, seed=4)
    index = build_vector_index(vectors, IndexParams(), kind)  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    for share in (0.001, 0.01, 0.6):
        allowed = np.flatnonzero(rng.random(len(vectors)) < share)
        query = unit_rows(1, 32, seed=20)[0]
        _, ids = filtered_search(index, vectors, query, 10, allowed)
        assert ids.shape == (1, min(10, len(allowed)))
        assert set(ids[0]) <= set(allowed.tolist())
        recall = len(set(ids[0]) & set(truth(vectors, query, 10, allowed))) / ids.shape[1]
        assert recall >= 0.6  # the approximate index's own recall on random 32-d data


@pytest.mark.parametrize("kind", ["hnsw", "hnsw_sq8"])
def test_filtered_search_over_an_approximate_geo_index_is_exact(
    searcher: tuple[Searcher, Path], kind: str, tmp_path: Path
) -> None:
    """The same filtered top-5 from an HNSW (and a compressed) index as from brute force: a
    selective filter searches the allowed rows' stored vectors, not the graph."""
    search, dataset = searcher
    params = Params()
    params = params.model_copy(
        update={"index": params.index.model_copy(update={"exact_max": 0, "approximate": kind})}
    )
    index = build_index_with(search.encoder, dataset, params, tmp_path / kind, progress=False)
    archive = load_archive(index, params.index)
    assert archive.meta["image_index"] == kind and archive.geo is not None
    approximate = Searcher(search.encoder, archive, candidates_k=archive.n_images)
    where = parse_filter(bbox=[5.5, 40, 12, 50], datetime_="2024-06-07T00:00:00Z/..")
    mask = approximate.image_mask(where)
    assert mask is not None and np.flatnonzero(mask).tolist() == list(range(6, 13))
    for query in ("a blue lake surrounded by land", "there is a desert"):
        got = approximate.search_images(query, 5, mask)
        expected = search.search_images(query, 5, search.image_mask(where))
        assert [h.row for h in got] == [h.row for h in expected]
