"""The drift statistic (MMD^2 with a median-bandwidth RBF kernel, and the share of queries far
from every training caption): checked against a naive double loop, low on queries drawn like
the training captions, over the threshold on shifted ones."""

from __future__ import annotations

import numpy as np
import pytest

from dove_model.loop_params import MonitoringParams
from dove_model.monitoring.drift import measure_drift, median_bandwidth, mmd2, normalised

DIM = 64


def topics(rng: np.random.Generator, n_topics: int) -> np.ndarray:
    return normalised(rng.normal(size=(n_topics, DIM)))


def draw(rng: np.random.Generator, centres: np.ndarray, n: int, noise: float = 0.35) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), n)]
    return normalised(picks + noise * rng.normal(size=(n, DIM)) / np.sqrt(DIM) * 4)


def naive_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-np.sum((a - b) ** 2) / (2 * bandwidth**2)))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a, b) for a in x for b in y) / (n * m)
    return xx + yy - 2 * xy


def test_mmd2_matches_a_naive_implementation() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 5)), rng.normal(loc=0.5, size=(7, 5))
    bandwidth = median_bandwidth(y)
    assert mmd2(x, y, bandwidth) == pytest.approx(naive_mmd2(x, y, bandwidth), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unshifted_queries_do_not_drift_and_shifted_ones_do(seed: int) -> None:
    rng = np.random.default_rng(seed)
    train_topics, new_topics = topics(rng, 12), topics(rng, 12)
    reference = draw(rng, train_topics, 600)
    params = MonitoringParams(min_queries=50, max_far_share=0.6)
    same = measure_drift(draw(rng, train_topics, 300), reference, params)
    half = measure_drift(
        np.vstack([draw(rng, train_topics, 150), draw(rng, new_topics, 150)]), reference, params
    )
    shifted = measure_drift(draw(rng, new_topics, 300), reference, params)
    assert same.drifted is False and same.mmd2 is not None and same.mmd2 < params.mmd_threshold
    assert shifted.drifted is True and shifted.mmd2 > params.mmd_threshold  # type: ignore[operator]
    assert same.mmd2 < half.mmd2 < shifted.mmd2  # type: ignore[operator]
    assert same.far_share < shifted.far_share  # type: ignore[operator]


def test_too_few_queries_give_no_verdict() -> None:
    rng = np.random.default_rng(3)
    centres = topics(rng, 4)
    result = measure_drift(draw(rng, centres, 10), draw(rng, centres, 100), MonitoringParams())
    assert result.drifted is None and result.mmd2 is None and result.n_queries == 10
