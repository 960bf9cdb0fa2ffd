"""Comparing two rankings of the same archive where near-equal scores may swap places.

Identical captions of different images score the same, and two builds of one index (a
sharded one merged, a single one) can differ in the last float16 bit of an embedding on some
CPUs, so tied hits may come back in either order. Outside such ties the order must agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def assert_same_ranking(
    found: Sequence[Sequence[Any]],
    expected: Sequence[Sequence[Any]],
    scores: np.ndarray,
    expected_scores: np.ndarray,
    tie: float = 1e-4,
) -> None:
    """Per query: the same scores (within ``tie``), and the same hits in every group of
    near-equal scores; the last group may be cut at k, so there only its size is checked."""
    np.testing.assert_allclose(scores, expected_scores, atol=tie)
    offset = 0
    for query, (hits, want) in enumerate(zip(found, expected, strict=True)):
        assert len(hits) == len(want), f"query {query}: {len(hits)} hits, expected {len(want)}"
        row = expected_scores[offset : offset + len(want)]
        offset += len(want)
        start = 0
        while start < len(want):
            end = start + 1
            while end < len(want) and abs(row[end] - row[start]) <= tie:
                end += 1
            if end < len(want):  # a whole group: the same hits, in any order
                group, want_group = list(hits[start:end]), list(want[start:end])
                assert sorted(map(repr, group)) == sorted(map(repr, want_group)), (
                    f"query {query}, ranks {start}-{end - 1}: {group} != {want_group}"
                )
            start = end
