"""Recall gates: may a challenger become champion? Pure functions, no MLflow here.

Two rules (``register.gates`` in params.yaml):
1. an absolute floor per metric (``min_metrics``, percentages as in the metrics JSON);
2. no regression larger than ``max_regression`` points on any gated metric against the
   current champion, both evaluated on the same data version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from dove_model.config import GateParams


class GateVerdict(StrEnum):
    """The gate outcome as every stage, tag and orchestrator spells it (this module owns it):
    the ``gate`` tag of a model version, the KFP tasks' outputs, the Airflow task results."""

    PASSED = "passed"
    FAILED = "failed"

    @classmethod
    def of(cls, passed: bool) -> GateVerdict:
        return cls.PASSED if passed else cls.FAILED


@dataclass(frozen=True)
class GateDecision:
    """The outcome of the gates, with one human-readable line per failed check."""

    passed: bool
    failures: tuple[str, ...] = ()
    checked: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> GateVerdict:
        return GateVerdict.of(self.passed)

    def summary(self) -> str:
        if self.passed:
            return "gates passed: " + "; ".join(self.checked)
        return "gates failed: " + "; ".join(self.failures)


def _metric(metrics: Mapping[str, object], name: str) -> float | None:
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def check_gates(
    metrics: Mapping[str, object],
    gates: GateParams,
    champion_metrics: Mapping[str, object] | None = None,
) -> GateDecision:
    """Apply the floors, then the regression tolerance against ``champion_metrics`` (if any).

    ``champion_metrics`` must come from the same data version as ``metrics``; the caller
    re-evaluates the champion when the data changed.
    """
    failures: list[str] = []
    checked: list[str] = []
    for name, floor in sorted(gates.min_metrics.items()):
        value = _metric(metrics, name)
        if value is None:
            failures.append(f"{name} missing from the metrics")
        elif value < floor:
            failures.append(f"{name}={value:.2f} below the floor {floor:.2f}")
        else:
            checked.append(f"{name}={value:.2f} >= {floor:.2f}")
    if champion_metrics is not None:
        for name in sorted(gates.min_metrics):
            value, best = _metric(metrics, name), _metric(champion_metrics, name)
            if value is None or best is None:
                continue
            if best - value > gates.max_regression:
                failures.append(
                    f"{name}={value:.2f} regresses {best - value:.2f} points against the "
                    f"champion's {best:.2f} (tolerance {gates.max_regression:.2f})"
                )
            else:
                tolerance = gates.max_regression
                checked.append(f"{name}={value:.2f} >= champion {best:.2f} - {tolerance:.2f}")
    return GateDecision(passed=not failures, failures=tuple(failures), checked=tuple(checked))
