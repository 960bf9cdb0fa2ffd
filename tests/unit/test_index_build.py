"""``build_index`` with a real (untrained) DOVE model, and two-stage search against
exhaustive ROAM scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dove_model.config import Params
from dove_model.families.dove.inference import DoveEncoder
from dove_model.index import build_index, load_archive
from dove_model.index.encoder import ImageArrays
from dove_model.serving.search import Searcher
from dove_model.testing.deployment import SCENES, synthetic_dataset, tiny_model_dir


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("build")
    dataset = synthetic_dataset(root / "ds", per_scene=4)
    captions = [c for _, c in SCENES.values()]
    model = tiny_model_dir(root / "model", [*captions, *(f"there is {c}" for c in captions)])
    index = build_index(model, dataset, Params(), root / "index", progress=False)
    return dataset, model, index


def test_index_records_the_model_and_sizes(built: tuple[Path, Path, Path]) -> None:
    _, model, index = built
    encoder = DoveEncoder.from_dir(model)
    archive = load_archive(index, Params().index)
    assert archive.fingerprint == encoder.fingerprint
    assert (archive.n_images, archive.n_captions) == (16, 32)
    assert archive.arrays.v_m.shape == (16, encoder.embed_dim)
    norms = np.linalg.norm(np.asarray(archive.arrays.v_m, np.float32), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)  # float16 storage of unit vectors


def test_two_stage_equals_exhaustive_when_k_covers_the_archive(
    built: tuple[Path, Path, Path],
) -> None:
    _, model, index = built
    encoder = DoveEncoder.from_dir(model)
    archive = load_archive(index, Params().index)
    searcher = Searcher(encoder, archive, candidates_k=archive.n_images)
    query = "a blue lake surrounded by land"
    hits = searcher.search_images(query, k=5)
    everything = ImageArrays(
        *(
            np.asarray(a, np.float32)
            for a in (archive.arrays.v_m, archive.arrays.v_mr, archive.arrays.r)
        )
    )
    exhaustive = encoder.score(everything, encoder.encode_texts([query]))[:, 0]
    assert [h.row for h in hits] == list(np.argsort(-exhaustive, kind="stable")[:5])
    np.testing.assert_allclose([h.score for h in hits], np.sort(exhaustive)[::-1][:5], atol=1e-5)


def test_search_texts_ranks_caption_candidates(built: tuple[Path, Path, Path]) -> None:
    dataset, model, index = built
    encoder = DoveEncoder.from_dir(model)
    searcher = Searcher(encoder, load_archive(index, Params().index), candidates_k=8)
    with Image.open(dataset / "images" / "lake_0.png") as img:
        hits = searcher.search_texts(img.convert("RGB"), k=3)
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_batch_of_queries_ranks_each_as_if_alone(built: tuple[Path, Path, Path]) -> None:
    _, model, index = built
    encoder = DoveEncoder.from_dir(model)
    searcher = Searcher(encoder, load_archive(index, Params().index), candidates_k=8)
    requests = [("a blue lake surrounded by land", 5), ("yellow desert", 3), ("roads", 8)]
    batched = searcher.search_images_batch(requests)
    for (query, k), hits in zip(requests, batched, strict=True):
        alone = searcher.search_images(query, k)
        assert [h.row for h in hits] == [h.row for h in alone]
        assert len(hits) == k
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in alone], atol=1e-5)
        assert [h.image_id for h in hits] == [
            str(searcher.archive.images.iloc[h.row]["image_id"]) for h in hits
        ]


def test_fewer_candidates_than_asked_are_dropped_not_padded(tmp_path: Path) -> None:
    """IVF probing one list finds ~1/4 of this archive: FAISS pads the rest with -1."""
    import pandas as pd

    from dove_model.config import IndexParams
    from dove_model.index.archive import write_archive
    from dove_model.model.directory import model_fingerprint
    from dove_model.testing.deployment import random_archive

    model = tiny_model_dir(tmp_path / "model", ["a blue lake"])
    n = 400
    arrays = random_archive(n, DoveEncoder.from_dir(model).embed_dim)
    images = pd.DataFrame({"image_id": [f"img{i}" for i in range(n)]})
    images["path"] = images["image_id"] + ".png"
    images["label"] = pd.array([None] * n, dtype="string")
    params = IndexParams(exact_max=0, approximate="ivf", ivf_nlist=4, ivf_nprobe=1)
    write_archive(
        tmp_path / "index",
        arrays=arrays,
        images=images,
        captions=pd.DataFrame({"caption": ["a blue lake"], "image_row": [0]}),
        caption_embeddings=np.asarray(arrays.v_m[:1], np.float32),
        params=params,
        meta={"model_fingerprint": model_fingerprint(model), "model": {}},
    )
    searcher = Searcher(
        DoveEncoder.from_dir(model), load_archive(tmp_path / "index", params), candidates_k=n
    )
    [hits, few] = searcher.search_images_batch([("a blue lake", n), ("lake", 5)])
    rows = [h.row for h in hits]
    assert 0 < len(rows) < n and len(set(rows)) == len(rows)
    assert all(np.isfinite(h.score) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(few) == 5
