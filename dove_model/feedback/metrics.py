"""Prometheus metrics of the loop: query-log outcomes, feedback marks, and the online proxies
(share of searches with feedback, precision of the marked results) per model version.

Created by the service at start with BentoML's metric classes; tests pass a registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from dove_model.feedback.recent import Proxies


class LoopMetrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        counter_cls: Any = Counter,
        gauge_cls: Any = Gauge,
    ) -> None:
        kwargs: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.log_records = counter_cls(
            "dove_querylog_records",
            "Query-log records written, dropped at a full queue, or lost to a failing store",
            labelnames=("outcome",),
            **kwargs,
        )
        self.marks = counter_cls(
            "dove_feedback_marks", "Relevance marks received", labelnames=("relevant",), **kwargs
        )
        self.feedback_share = gauge_cls(
            "dove_feedback_search_share",
            "Share of the recent searches with at least one mark",
            labelnames=("model_version",),
            multiprocess_mode="livemax",  # BentoML's multiprocess registry: no pid label
            **kwargs,
        )
        self.precision = gauge_cls(
            "dove_feedback_precision_at_k",
            "Share of the marked results (of the recent searches) marked relevant",
            labelnames=("model_version",),
            multiprocess_mode="livemax",  # BentoML's multiprocess registry: no pid label
            **kwargs,
        )

    def log_outcome(self, outcome: str, n: int) -> None:
        self.log_records.labels(outcome=outcome).inc(n)

    def mark(self, relevant: bool) -> None:
        self.marks.labels(relevant=str(relevant).lower()).inc()

    def proxies(self, model_version: str, proxies: Proxies) -> None:
        self.feedback_share.labels(model_version=model_version).set(proxies.feedback_share)
        self.precision.labels(model_version=model_version).set(proxies.precision)
