"""Recall gates: floors and the regression tolerance against the champion."""

from __future__ import annotations

import pytest

from dove_model.config import GateParams
from dove_model.registry.gates import check_gates

GATES = GateParams(min_metrics={"mR": 5.0, "t2i_r1": 1.0}, max_regression=1.0)


def test_passes_above_every_floor_without_a_champion() -> None:
    decision = check_gates({"mR": 12.0, "t2i_r1": 3.0}, GATES)
    assert decision.passed
    assert decision.failures == ()
    assert "mR=12.00" in decision.summary()


@pytest.mark.parametrize(
    ("metrics", "reason"),
    [
        ({"mR": 4.99, "t2i_r1": 3.0}, "mR=4.99 below the floor 5.00"),
        ({"mR": 12.0}, "t2i_r1 missing"),
        ({"mR": float("nan"), "t2i_r1": 3.0}, "mR missing"),
        ({"mR": True, "t2i_r1": 3.0}, "mR missing"),
    ],
)
def test_fails_below_a_floor_or_without_the_metric(metrics: dict, reason: str) -> None:
    decision = check_gates(metrics, GATES)
    assert not decision.passed
    assert any(reason in failure for failure in decision.failures)


def test_a_small_regression_within_tolerance_passes() -> None:
    decision = check_gates({"mR": 11.5, "t2i_r1": 3.0}, GATES, {"mR": 12.0, "t2i_r1": 3.5})
    assert decision.passed


def test_a_regression_beyond_tolerance_fails_even_above_the_floor() -> None:
    decision = check_gates({"mR": 10.0, "t2i_r1": 3.0}, GATES, {"mR": 12.0, "t2i_r1": 3.0})
    assert not decision.passed
    assert "regresses 2.00 points" in decision.summary()


def test_a_champion_missing_a_metric_is_not_compared_on_it() -> None:
    decision = check_gates({"mR": 10.0, "t2i_r1": 3.0}, GATES, {"t2i_r1": 3.0})
    assert decision.passed
