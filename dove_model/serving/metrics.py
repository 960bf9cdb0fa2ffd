"""Prometheus histograms per serving step (encode, candidate search, re-rank), and a counter
of live index swaps and refusals.

Created by the service at start (never at import), so the collector lands in the registry
BentoML exports on ``/metrics``; tests pass their own registry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

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


class IndexMetrics:
    """``dove_index_swaps_total{outcome="swapped"|"refused"}``: new index versions the
    service swapped to, and those it refused (kept serving the old one)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, counter_cls: Any = Counter
    ) -> None:
        kwargs: dict[str, Any] = {"registry": registry} if registry is not None else {}
        self.swaps = counter_cls(
            "dove_index_swaps",
            "New index versions swapped to or refused",
            labelnames=("outcome",),
            **kwargs,
        )

    def outcome(self, outcome: Literal["swapped", "refused"]) -> None:
        self.swaps.labels(outcome=outcome).inc()


# ----------------------------------------------------------- bounded endpoint labels
REAL_PATH_KEY = "dove.real_path"  # the request path, when the metrics saw a bounded label
UNMATCHED_PATH = "/{unmatched}"


class EndpointLabels:
    """Maps a request path onto a bounded set of ``endpoint`` label values.

    BentoML's request metrics label each request by its raw path, so every random 404 path
    (and every thumbnail row) would add series to ``/metrics`` forever. Known paths keep
    their name, the two parametrised page routes collapse onto their template, and
    anything else is ``/{unmatched}``.
    """

    def __init__(self, exact: frozenset[str], templates: dict[str, str]) -> None:
        self.exact = exact
        self.templates = templates  # path prefix -> label

    def __call__(self, path: str) -> str:
        if path in self.exact:
            return path
        for prefix, label in self.templates.items():
            if path.startswith(prefix):
                return label
        return UNMATCHED_PATH


def bound_endpoint_labels(labels: EndpointLabels) -> bool:
    """Make BentoML's traffic-metrics middleware label requests through ``labels``.

    The middleware reads ``scope["path"]`` before anything of ours runs, so it is handed a
    copy of the scope whose path is the label; the real path travels in ``REAL_PATH_KEY``
    and the request guard routes on it again. Installed once per worker at service start;
    returns False (and changes nothing) if BentoML's middleware is not where it was.
    """
    try:
        from bentoml._internal.server.http import instruments
    except ImportError:
        return False
    middleware = getattr(instruments, "RunnerTrafficMetricsMiddleware", None)
    if middleware is None:
        return False
    if getattr(middleware, "_dove_labels", None) is not None:
        middleware._dove_labels = labels
        return True
    original = middleware.__call__

    async def labelled_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            label = type(self)._dove_labels(scope["path"])
            if label != scope["path"]:
                scope = {**scope, "path": label, REAL_PATH_KEY: scope["path"]}
        await original(self, scope, receive, send)

    middleware._dove_labels = labels
    middleware.__call__ = labelled_call
    return True
