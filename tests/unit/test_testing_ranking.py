"""The tie-aware ranking comparison the index build tests rely on."""

from __future__ import annotations

import numpy as np
import pytest

from dove_model.testing.ranking import assert_same_ranking

SCORES = np.array([0.9, 0.5, 0.5, 0.3, 0.1, 0.1])  # two queries of three hits


def test_tied_hits_may_swap_places() -> None:
    expected = [["a", "b", "c"], ["d", "e", "f"]]
    found = [["a", "c", "b"], ["d", "f", "e"]]  # query 1: a tie cut at k, any members
    assert_same_ranking(found, expected, SCORES, SCORES)


def test_a_swap_outside_a_tie_fails() -> None:
    with pytest.raises(AssertionError):
        assert_same_ranking(
            [["b", "a", "c"], ["d", "e", "f"]], [["a", "b", "c"], ["d", "e", "f"]], SCORES, SCORES
        )


def test_another_hit_inside_a_whole_tie_group_fails() -> None:
    scores = np.array([0.5, 0.5, 0.3])
    with pytest.raises(AssertionError):
        assert_same_ranking([["a", "x", "c"]], [["a", "b", "c"]], scores, scores)


def test_different_scores_fail() -> None:
    with pytest.raises(AssertionError):
        assert_same_ranking([["a", "b", "c"]], [["a", "b", "c"]], SCORES[:3] + 0.01, SCORES[:3])
