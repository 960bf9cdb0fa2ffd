"""Recall metrics against a plain brute-force reference on seeded random scores."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dove_model.metrics import (
    RECALL_KEYS,
    random_chance_metrics,
    retrieval_metrics,
    tie_averaged_metrics,
)


def brute_force(scores: np.ndarray, caption_image: np.ndarray) -> dict[str, float]:
    """Sort every row/column; ties put wrong items first (pessimistic), like the contract."""
    n_img, n_cap = scores.shape
    i2t, t2i = [], []
    for i in range(n_img):
        order = sorted(range(n_cap), key=lambda j: (-scores[i, j], caption_image[j] == i))
        i2t.append(next(r for r, j in enumerate(order) if caption_image[j] == i))
    for j in range(n_cap):
        order = sorted(range(n_img), key=lambda i: (-scores[i, j], i == caption_image[j]))
        t2i.append(order.index(caption_image[j]))
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * sum(r < k for r in ranks) / len(ranks)
    out["mR"] = sum(out[k] for k in RECALL_KEYS) / 6
    return out


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_with_ties_and_unequal_captions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_img = int(rng.integers(3, 25))
    counts = rng.integers(1, 7, size=n_img)  # 1..6 captions per image
    caption_image = rng.permutation(np.repeat(np.arange(n_img), counts))
    # few distinct values -> many ties
    scores = rng.integers(0, 4, size=(n_img, len(caption_image))).astype(np.float32)
    got = retrieval_metrics(scores, caption_image)
    want = brute_force(scores, caption_image)
    assert got == pytest.approx(want)


def test_continuous_scores_match_brute_force() -> None:
    rng = np.random.default_rng(42)
    caption_image = np.repeat(np.arange(30), 5)
    scores = rng.normal(size=(30, 150))
    assert retrieval_metrics(scores, caption_image) == pytest.approx(
        brute_force(scores, caption_image)
    )


def test_perfect_and_constant_scores() -> None:
    caption_image = np.repeat(np.arange(12), 5)
    perfect = (caption_image[None, :] == np.arange(12)[:, None]).astype(float)
    assert all(v == 100.0 for v in retrieval_metrics(perfect, caption_image).values())
    constant = np.zeros((12, 60))  # ties everywhere: nothing is earned
    got = retrieval_metrics(constant, caption_image)
    assert got["i2t_r1"] == 0.0 and got["t2i_r10"] == 0.0


def test_unscored_pairs_rank_last() -> None:
    caption_image = np.array([0, 0, 1, 1])
    scores = np.full((2, 4), -np.inf)
    scores[0, 0] = 1.0  # image 1 and its captions were never scored
    got = retrieval_metrics(scores, caption_image)
    assert got["i2t_r1"] == 50.0
    assert got["t2i_r1"] == 25.0


def test_random_chance_matches_simulation_and_formula() -> None:
    caption_image = np.repeat(np.arange(20), [5] * 10 + [2] * 10)
    chance = random_chance_metrics(caption_image, 20)
    assert chance["t2i_r1"] == pytest.approx(5.0)
    assert chance["t2i_r10"] == pytest.approx(50.0)
    # i2t R@1 for an image with c of n captions is c / n
    assert chance["i2t_r1"] == pytest.approx(100 * np.mean([5 / 70] * 10 + [2 / 70] * 10))
    miss = math.comb(65, 5) / math.comb(70, 5)
    two_miss = math.comb(68, 5) / math.comb(70, 5)
    assert chance["i2t_r5"] == pytest.approx(100 * (1 - (miss + two_miss) / 2))
    rng = np.random.default_rng(0)
    simulated = np.mean(
        [retrieval_metrics(rng.random((20, 70)), caption_image)["mR"] for _ in range(300)]
    )
    assert simulated == pytest.approx(chance["mR"], abs=1.5)


def test_brute_force_reference_itself_on_a_tiny_case() -> None:
    caption_image = np.array([0, 1, 1])
    scores = np.array([[0.5, 0.5, 0.1], [0.9, 0.2, 0.3]])
    ref = brute_force(scores, caption_image)
    # image 0: own caption 0 ties with caption 1 -> rank 1; image 1: best own 0.3 < 0.9 -> rank 1
    assert ref["i2t_r1"] == 0.0 and ref["i2t_r5"] == 100.0
    assert list(itertools.islice(ref, 1)) == ["i2t_r1"]


def literature_recalls(scores: np.ndarray, caption_image: np.ndarray) -> dict[str, float]:
    """The literature's protocol: rank by a descending sort, best own caption for i2t."""
    n_img, n_cap = scores.shape
    i2t = [
        min(
            int(np.where(np.argsort(-scores[i], kind="stable") == j)[0][0])
            for j in np.where(caption_image == i)[0]
        )
        for i in range(n_img)
    ]
    t2i = [
        int(np.where(np.argsort(-scores[:, j], kind="stable") == caption_image[j])[0][0])
        for j in range(n_cap)
    ]
    out = {
        f"{d}_r{k}": 100.0 * float(np.mean(np.array(r) < k))
        for d, r in (("i2t", i2t), ("t2i", t2i))
        for k in (1, 5, 10)
    }
    out["mR"] = float(np.mean([out[k] for k in RECALL_KEYS]))
    return out


@pytest.mark.parametrize("seed", range(3))
def test_tie_averaged_recalls_are_the_literature_protocol_over_random_tie_orders(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    n_img = 12
    caption_image = rng.permutation(np.repeat(np.arange(n_img), rng.integers(1, 6, n_img)))
    scores = rng.integers(0, 3, size=(n_img, len(caption_image))).astype(np.float64)
    want = tie_averaged_metrics(scores, caption_image)
    # shuffle which tied item comes first: the mean over many orders converges on `want`
    draws = [
        literature_recalls(scores + 1e-9 * rng.random(scores.shape), caption_image)
        for _ in range(1500)
    ]
    for key in want:
        assert np.mean([d[key] for d in draws]) == pytest.approx(want[key], abs=2.0)


def test_tie_averaged_equals_pessimistic_without_ties_and_chance_when_constant() -> None:
    rng = np.random.default_rng(7)
    caption_image = np.repeat(np.arange(15), 5)
    scores = rng.normal(size=(15, 75))
    assert tie_averaged_metrics(scores, caption_image) == pytest.approx(
        retrieval_metrics(scores, caption_image)
    )
    constant = tie_averaged_metrics(np.zeros((15, 75)), caption_image)
    assert constant == pytest.approx(random_chance_metrics(caption_image, 15))
    unscored = np.full((15, 75), -np.inf)
    assert tie_averaged_metrics(unscored, caption_image)["mR"] == 0.0
