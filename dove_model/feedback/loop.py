"""What the service holds for the loop: the query log's background writer, the recent
searches ``/feedback`` may mark, the per-client rate limit and the metrics."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dove_model.feedback.metrics import LoopMetrics
from dove_model.feedback.ratelimit import RateLimiter
from dove_model.feedback.recent import FeedbackRefused, RecentQueries
from dove_model.feedback.records import FeedbackRecord, QueryRecord
from dove_model.feedback.store import LogStore, open_store
from dove_model.feedback.writer import BackgroundWriter
from dove_model.loop_params import FeedbackParams

QUERY_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_IMAGE_ID_CHARS = 500


def client_of(headers: Mapping[str, str], address: str | None) -> str:
    """Who sent a request, as 16 hex digits: the hash of its API key when it sent one (one
    key, one source), else of its address. Never the key itself."""
    auth = headers.get("authorization", "") or headers.get("x-api-key", "")
    seed = f"key:{auth}" if auth else f"addr:{address or ''}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Mark:
    """A checked ``/feedback`` body."""

    query_id: str
    image_id: str
    relevant: bool

    @classmethod
    def parse(cls, query_id: Any, image_id: Any, relevant: Any) -> Mark:
        if not isinstance(query_id, str) or not QUERY_ID.match(query_id):
            raise FeedbackRefused("query_id must be the 32 hex digits a search returned")
        if not isinstance(image_id, str) or not image_id.strip():
            raise FeedbackRefused("image_id must be a non-empty string")
        if len(image_id) > MAX_IMAGE_ID_CHARS:
            raise FeedbackRefused(f"image_id is longer than {MAX_IMAGE_ID_CHARS} characters")
        if not isinstance(relevant, bool):
            raise FeedbackRefused("relevant must be true or false")
        return cls(query_id, image_id, relevant)


class FeedbackLoop:
    def __init__(
        self, params: FeedbackParams, store: LogStore, metrics: LoopMetrics | None = None
    ) -> None:
        self.params = params
        self.metrics = metrics
        log = params.query_log
        self.writer = BackgroundWriter(
            store, log.queue_size, log.batch_size, log.linger_s, self._publish_all
        )
        if metrics is not None:
            self.writer.counts.on_change = metrics.log_outcome
        self.recent = RecentQueries(params.recent_queries, params.max_feedback_per_query)
        self.limiter = RateLimiter(params.rate_per_minute, params.rate_burst)

    @classmethod
    def start(
        cls, params: FeedbackParams, env: Mapping[str, str], metrics: LoopMetrics | None = None
    ) -> FeedbackLoop | None:
        """The loop the settings ask for; None when the query log is off."""
        if not params.query_log.enabled:
            return None
        return cls(params, open_store(params.query_log, env), metrics)

    def record_search(
        self,
        text: str,
        k: int,
        hits: list[tuple[str, float]],
        versions: tuple[str, str | None],
        started: float,
        client: str = "",
    ) -> str:
        """Queue the search's record (never blocks); returns its query id. ``started`` is
        the request's ``time.perf_counter()`` at arrival."""
        latency_ms = (time.perf_counter() - started) * 1000
        privacy = self.params.query_log.privacy
        record = QueryRecord.of_search(text, k, hits, versions, latency_ms, privacy, client)
        self.recent.add(record.query_id, record.image_ids, record.model_version)
        self.writer.submit(record)  # the gauges follow on the writer's thread (_publish_all)
        return record.query_id

    def record_mark(self, mark: Mark, client: str) -> FeedbackRecord:
        """Check and queue a mark; raises FeedbackRefused (404 unknown ids, 429 too many)."""
        if not self.limiter.allow(client):
            raise FeedbackRefused("too many feedback requests: slow down", 429)
        rank, version = self.recent.mark(mark.query_id, mark.image_id, mark.relevant)
        record = FeedbackRecord(mark.query_id, mark.image_id, mark.relevant, rank, client=client)
        self.writer.submit(record)
        if self.metrics is not None:
            self.metrics.mark(mark.relevant)
        self._publish(version)
        return record

    def _publish_all(self) -> None:
        if self.metrics is not None:
            for version, proxies in self.recent.proxies().items():
                self.metrics.proxies(version, proxies)

    def _publish(self, model_version: str) -> None:
        if self.metrics is not None:
            proxies = self.recent.proxies().get(model_version)
            if proxies is not None:
                self.metrics.proxies(model_version, proxies)

    def close(self) -> None:
        self.writer.close()
