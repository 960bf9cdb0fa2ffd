"""The searches ``/feedback`` accepts marks for (the newest ``recent_queries``, in memory:
checking a mark never touches the store), and the online proxies computed from them."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from dove_model.errors import DoveError


class FeedbackRefused(DoveError):
    """A mark the service will not take; ``status`` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RecentQuery:
    image_ids: list[str]
    model_version: str
    marks: dict[str, bool] = field(default_factory=dict)  # image id -> relevant


@dataclass
class Proxies:
    """Per model version: searches, those with feedback, marks and relevant marks."""

    searches: int = 0
    with_feedback: int = 0
    marked: int = 0
    relevant: int = 0

    @property
    def feedback_share(self) -> float:
        return self.with_feedback / self.searches if self.searches else 0.0

    @property
    def precision(self) -> float:
        """Precision@k of the marked results: the share of marked results marked relevant."""
        return self.relevant / self.marked if self.marked else 0.0


class RecentQueries:
    def __init__(self, capacity: int, max_marks: int = 100) -> None:
        self.capacity = capacity
        self.max_marks = max_marks
        self._queries: OrderedDict[str, RecentQuery] = OrderedDict()
        self._proxies: dict[str, Proxies] = {}
        self._lock = threading.Lock()

    def add(self, query_id: str, image_ids: list[str], model_version: str) -> None:
        with self._lock:
            self._queries[query_id] = RecentQuery(list(image_ids), model_version)
            self._proxies.setdefault(model_version, Proxies()).searches += 1
            while len(self._queries) > self.capacity:
                _, old = self._queries.popitem(last=False)
                self._forget(old)

    def _forget(self, old: RecentQuery) -> None:
        proxies = self._proxies[old.model_version]
        proxies.searches -= 1
        proxies.with_feedback -= bool(old.marks)
        proxies.marked -= len(old.marks)
        proxies.relevant -= sum(old.marks.values())

    def mark(self, query_id: str, image_id: str, relevant: bool) -> tuple[int, str]:
        """Record a mark; returns the image's 1-based rank and the model version. A second
        mark on the same result replaces the first."""
        with self._lock:
            query = self._queries.get(query_id)
            if query is None:
                raise FeedbackRefused(f"unknown or expired query_id {query_id[:64]!r}", 404)
            if image_id not in query.image_ids:
                raise FeedbackRefused(
                    f"image_id {image_id[:100]!r} is not a result of query {query_id[:64]}", 404
                )
            if image_id not in query.marks and len(query.marks) >= self.max_marks:
                raise FeedbackRefused(f"at most {self.max_marks} marks per query", 429)
            proxies = self._proxies[query.model_version]
            before = query.marks.get(image_id)
            proxies.with_feedback += not query.marks
            proxies.marked += before is None
            proxies.relevant += int(relevant) - int(bool(before))
            query.marks[image_id] = relevant
            return query.image_ids.index(image_id) + 1, query.model_version

    def proxies(self) -> dict[str, Proxies]:
        with self._lock:
            return {version: Proxies(**vars(p)) for version, p in self._proxies.items()}
