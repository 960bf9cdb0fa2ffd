"""Prometheus histograms per serving step (encode, candidate search, re-rank).

Created by the service at start (never at import), so the collector lands in the registry
BentoML exports on ``/metrics``; tests pass their own registry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Histogram

Step = Literal["encode", "candidate_search", "rerank"]
STEPS: tuple[Step, ...] = ("encode", "candidate_search", "rerank")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class StepMetrics:
    """Step times labelled by step and direction (text_to_image / image_to_text), and the
    sizes of the batches concurrent queries were coalesced into."""

    def __init__(
        self, registry: CollectorRegistry | None = None, histogram_cls: Any = Histogram
    ) -> None:
        kwargs: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.histogram = histogram_cls(
            "dove_search_step_seconds",
            "Time spent per search step",
            labelnames=("step", "direction"),
            buckets=BUCKETS,
            **kwargs,
        )
        self.batch_sizes = histogram_cls(
            "dove_search_batch_size",
            "Queries per coalesced search batch",
            labelnames=("direction",),
            buckets=BATCH_BUCKETS,
            **kwargs,
        )

    def batch(self, direction: str, size: int) -> None:
        self.batch_sizes.labels(direction=direction).observe(size)

    @contextmanager
    def time(self, step: Step, direction: str, count: int = 1) -> Iterator[None]:
        """Time a step run once for ``count`` queries (a batch): each query waited that long."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            series = self.histogram.labels(step=step, direction=direction)
            for _ in range(count):
                series.observe(elapsed)
