"""Retrieval recalls R@1/5/10 in both directions and mR, any number of captions per image.

Ranks are pessimistic on ties: a wrong item scoring *equal* to the right one counts as ranked
above it, so a constant score earns nothing. ``-inf`` marks a pair a two-stage search never
scored.

:func:`tie_averaged_metrics` is the literature's protocol (rank by ``argsort``, ties in
whatever order the sort leaves them) made exact: the expected recall when tied items are
ordered at random. The two differ only where scores tie exactly, which real datasets cause by
repeating captions: in UCM-Captions 154 of the 210 test images share all five captions with
other images, so identical texts tie and the pessimistic i2t R@1 cannot exceed 27 %.
"""

from __future__ import annotations

import math

import numpy as np

KS = (1, 5, 10)
RECALL_KEYS = tuple(f"{d}_r{k}" for d in ("i2t", "t2i") for k in KS)


def i2t_ranks(scores: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """Per image, the 0-based rank of its best own caption among all captions."""
    n_images = scores.shape[0]
    own = caption_image[None, :] == np.arange(n_images)[:, None]  # (N, M)
    best_own = np.where(own, scores, -np.inf).max(axis=1)
    ahead = (scores >= best_own[:, None]) & ~own
    # an image whose own captions were never scored (-inf) ranks behind everything
    ranks = ahead.sum(axis=1)
    ranks[np.isneginf(best_own)] = scores.shape[1]
    return ranks


def t2i_ranks(scores: np.ndarray, caption_image: np.ndarray) -> np.ndarray:
    """Per caption, the 0-based rank of its image among all images."""
    n_captions = scores.shape[1]
    own_score = scores[caption_image, np.arange(n_captions)]
    ahead = scores >= own_score[None, :]
    ahead[caption_image, np.arange(n_captions)] = False
    ranks = ahead.sum(axis=0)
    ranks[np.isneginf(own_score)] = scores.shape[0]
    return ranks


def recalls_from_ranks(i2t: np.ndarray, t2i: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in KS:
            out[f"{name}_r{k}"] = float(100.0 * np.mean(ranks < k))
    out["mR"] = float(np.mean([out[key] for key in RECALL_KEYS]))
    return out


def retrieval_metrics(
    scores: np.ndarray, caption_image: np.ndarray, t2i_scores: np.ndarray | None = None
) -> dict[str, float]:
    """Recalls (percent) and mR from an (N_images, N_captions) score matrix.

    ``t2i_scores`` lets the two directions use different matrices (two-stage search ranks
    different candidate sets per direction).
    """
    caption_image = np.asarray(caption_image, dtype=np.int64)
    t2i = t2i_scores if t2i_scores is not None else scores
    return recalls_from_ranks(i2t_ranks(scores, caption_image), t2i_ranks(t2i, caption_image))


def _hit_probability(n_items: int, n_right: int, k: int) -> float:
    """P(at least one of n_right items is in the top k of a random order of n_items)."""
    if k >= n_items:
        return 1.0
    # 1 - C(n - right, k) / C(n, k), through log-gamma to stay finite for large n
    if n_items - n_right < k:
        return 1.0
    log_miss = (
        math.lgamma(n_items - n_right + 1)
        - math.lgamma(n_items - n_right - k + 1)
        - math.lgamma(n_items + 1)
        + math.lgamma(n_items - k + 1)
    )
    return 1.0 - math.exp(log_miss)


def random_chance_metrics(caption_image: np.ndarray, n_images: int) -> dict[str, float]:
    """Expected recalls of a random ranking (the floor a learned model must clear)."""
    caption_image = np.asarray(caption_image, dtype=np.int64)
    n_captions = len(caption_image)
    per_image = np.bincount(caption_image, minlength=n_images)
    out: dict[str, float] = {}
    for k in KS:
        out[f"i2t_r{k}"] = float(
            100.0 * np.mean([_hit_probability(n_captions, int(c), k) for c in per_image])
        )
    for k in KS:
        out[f"t2i_r{k}"] = float(100.0 * _hit_probability(n_images, 1, k))
    out["mR"] = float(np.mean([out[key] for key in RECALL_KEYS]))
    return out


def _expected_hits(ahead: np.ndarray, tied: np.ndarray, right: np.ndarray, k: int) -> np.ndarray:
    """P(hit@k) per query: ``ahead`` wrong items rank first, then ``tied`` wrong and ``right``
    right items in random order."""
    return np.array(
        [
            0.0 if a >= k else _hit_probability(int(t + r), int(r), k - int(a))
            for a, t, r in zip(ahead, tied, right, strict=True)
        ]
    )


def tie_averaged_metrics(
    scores: np.ndarray, caption_image: np.ndarray, t2i_scores: np.ndarray | None = None
) -> dict[str, float]:
    """Recalls (percent) and mR with exact ties ordered at random, in expectation."""
    caption_image = np.asarray(caption_image, dtype=np.int64)
    n_images, n_captions = scores.shape
    own = caption_image[None, :] == np.arange(n_images)[:, None]
    best_own = np.where(own, scores, -np.inf).max(axis=1, keepdims=True)
    i2t_parts = (
        ((scores > best_own) & ~own).sum(axis=1),
        ((scores == best_own) & ~own).sum(axis=1),
        ((scores == best_own) & own).sum(axis=1),
    )
    t2i = t2i_scores if t2i_scores is not None else scores
    own_score = t2i[caption_image, np.arange(n_captions)][None, :]
    others = ~own
    t2i_parts = (
        ((t2i > own_score) & others).sum(axis=0),
        ((t2i == own_score) & others).sum(axis=0),
        np.ones(n_captions, dtype=np.int64),
    )
    unscored_i2t = np.isneginf(best_own[:, 0])
    unscored_t2i = np.isneginf(own_score[0])
    out: dict[str, float] = {}
    for name, parts, unscored in (
        ("i2t", i2t_parts, unscored_i2t),
        ("t2i", t2i_parts, unscored_t2i),
    ):
        for k in KS:
            hits = np.where(unscored, 0.0, _expected_hits(*parts, k))
            out[f"{name}_r{k}"] = float(100.0 * hits.mean())
    out["mR"] = float(np.mean([out[key] for key in RECALL_KEYS]))
    return out
