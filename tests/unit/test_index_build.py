"""``build_index`` with a real (untrained) DOVE model, and two-stage search against
exhaustive ROAM scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dove_model.config import Params
from dove_model.index import build_index, load_archive
from dove_model.index.encoder import ImageArrays
from dove_model.inference import DoveEncoder
from dove_model.serving.search import Searcher
from dove_model.serving.synthetic import SCENES, synthetic_dataset, tiny_model_dir


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
