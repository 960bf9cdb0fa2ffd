"""Two-stage evaluation: the caption-major re-rank equals a naive per-pair reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dove_model.evaluation.evaluate import top_k, two_stage_scores
from dove_model.families.dove.inference import (
    DoveEncoder,
    ImageParts,
    TextParts,
    _caption_major_chunks,
)
from dove_model.families.dove.model import DoveModel, ImageEmbeddings, TextEmbeddings
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.visual import PooledFeatures
from dove_model.families.dove.vocab import Vocabulary
from dove_model.metrics import retrieval_metrics

TINY = {"backbone": "resnet18", "embed_dim": 16, "word_dim": 8, "vocab_min_freq": 1}
WORDS = ["a", "red", "house", "near", "the", "river", "green", "field", "trees", "road"]
N_IMAGES, N_CAPTIONS = 9, 27
Setup = tuple[DoveEncoder, ImageParts, TextParts]


def random_captions(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(n)]


def tiny_setup(**overrides: object) -> Setup:
    torch.manual_seed(0)
    params = DoveSettings(**{**TINY, **overrides})
    captions = random_captions(N_CAPTIONS, seed=1)
    vocab = Vocabulary.build(captions, min_freq=1, max_len=params.max_len)
    model = DoveModel(params, len(vocab)).eval()
    features = PooledFeatures(
        levels=torch.rand(N_IMAGES, sum(model.backbone.level_channels)),
        regions=torch.rand(N_IMAGES, model.backbone.n_grid_regions, model.backbone.region_channels),
    )
    with torch.inference_mode():
        emb = model.image_embeddings(features)
    images = ImageParts(emb.v_m.numpy(), emb.v_mr.numpy(), emb.r.numpy())
    encoder = DoveEncoder(model, vocab, eval_size=64)
    return encoder, images, encoder.encode_texts(captions)


@pytest.fixture(scope="module", params=[{}, {"use_roam": False}], ids=["roam", "vse"])
def setup(request: pytest.FixtureRequest) -> Setup:
    return tiny_setup(**request.param)


def naive_pair_score(
    encoder: DoveEncoder, images: ImageParts, texts: TextParts, i: int, t: int
) -> float:
    """One (image, caption) pair at a time through the model's matched-pair score."""
    image = ImageEmbeddings(
        *(torch.from_numpy(a[i : i + 1]) for a in (images.v_m, images.v_mr, images.r))
    )
    text = TextEmbeddings(
        *(torch.from_numpy(a[t : t + 1]) for a in (texts.t_g, texts.words, texts.mask))
    )
    with torch.inference_mode():
        return float(encoder.model.pair_score(image, text)[0])


def naive_two_stage(
    encoder: DoveEncoder, images: ImageParts, texts: TextParts, k: int
) -> tuple[np.ndarray, np.ndarray]:
    global_scores = images.v_m @ texts.t_g.T
    i2t = np.full(global_scores.shape, -np.inf, np.float32)
    for i, captions in enumerate(top_k(global_scores, k)):
        for t in captions:
            i2t[i, t] = naive_pair_score(encoder, images, texts, i, int(t))
    t2i = np.full(global_scores.shape, -np.inf, np.float32)
    for t, candidates in enumerate(top_k(global_scores.T, k)):
        for i in candidates:
            t2i[i, t] = naive_pair_score(encoder, images, texts, int(i), t)
    return i2t, t2i


@pytest.mark.parametrize("k", [1, 4, 7])
def test_two_stage_equals_naive_per_pair_reference(setup: Setup, k: int) -> None:
    encoder, images, texts = setup
    i2t, t2i = two_stage_scores(encoder, images, texts, k)
    want_i2t, want_t2i = naive_two_stage(encoder, images, texts, k)
    for got, want in ((i2t, want_i2t), (t2i, want_t2i)):
        assert got.dtype == np.float32 and got.shape == (N_IMAGES, N_CAPTIONS)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
        np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], atol=1e-5)
    assert (np.isfinite(i2t).sum(axis=1) == k).all()
    assert (np.isfinite(t2i).sum(axis=0) == min(k, N_IMAGES)).all()


def test_two_stage_with_k_covering_everything_is_exhaustive(setup: Setup) -> None:
    encoder, images, texts = setup
    full = encoder.score(images, texts, chunk_size=4)
    i2t, t2i = two_stage_scores(encoder, images, texts, N_CAPTIONS)
    np.testing.assert_allclose(i2t, full, atol=1e-5)
    np.testing.assert_allclose(t2i, full, atol=1e-5)
    caption_image = np.arange(N_CAPTIONS) % N_IMAGES
    assert retrieval_metrics(i2t, caption_image, t2i_scores=t2i) == pytest.approx(
        retrieval_metrics(full, caption_image)
    )


@pytest.mark.parametrize("chunk_size", [1, 3, 5, 4096])
def test_score_pairs_any_order_duplicates_and_chunking(setup: Setup, chunk_size: int) -> None:
    encoder, images, texts = setup
    full = encoder.score(images, texts)
    rng = np.random.default_rng(2)
    image_index = rng.integers(0, N_IMAGES, 200)
    text_index = np.concatenate([np.zeros(40, np.int64), rng.integers(0, N_CAPTIONS, 160)])
    rng.shuffle(text_index)  # caption 0 has many pairs: it spans rows when chunks are small
    got = encoder.score_pairs(images, texts, image_index, text_index, chunk_size=chunk_size)
    assert got.dtype == np.float32 and got.shape == (200,)
    np.testing.assert_allclose(got, full[image_index, text_index], atol=1e-5)
    empty = encoder.score_pairs(images, texts, np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert empty.shape == (0,)


@pytest.mark.parametrize("slots", [1, 2, 7, 64])
def test_caption_major_chunks_cover_every_pair_once(slots: int) -> None:
    text_index = np.random.default_rng(3).integers(0, 6, 50)
    text_index[:20] = 4
    seen = []
    for pairs, real, caption in _caption_major_chunks(text_index, slots):
        assert pairs.shape == real.shape and pairs.shape[0] == caption.shape[0]
        assert pairs.size <= max(slots, 1) and real[:, 0].all()
        # every slot, padding included, belongs to its row's caption
        assert (text_index[pairs] == caption[:, None]).all()
        seen.extend(pairs[real].tolist())
    assert sorted(seen) == list(range(len(text_index)))
