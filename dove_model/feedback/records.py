"""The records of the query log: one per search, one per feedback mark."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Privacy = Literal["text", "hash"]


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_query_id() -> str:
    return uuid.uuid4().hex


def text_hash(text: str) -> str:
    """sha256 of the query as the service read it (stripped), hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class QueryRecord:
    """One search: what was asked (or its hash only), of which model and index, what came
    back and how long it took."""

    query_id: str
    at: datetime
    text: str | None  # None when privacy is "hash"
    text_sha256: str
    k: int
    model_version: str
    index_version: str | None
    image_ids: list[str]
    scores: list[float]
    latency_ms: float
    client: str = ""  # a hash of the API key or address: which source sent it
    kind: Literal["query"] = "query"

    @classmethod
    def of_search(
        cls,
        text: str,
        k: int,
        hits: list[tuple[str, float]],
        versions: tuple[str, str | None],
        latency_ms: float,
        privacy: Privacy,
        client: str = "",
    ) -> QueryRecord:
        return cls(
            query_id=new_query_id(),
            at=now_utc(),
            text=text if privacy == "text" else None,
            text_sha256=text_hash(text),
            k=k,
            model_version=versions[0],
            index_version=versions[1],
            image_ids=[image_id for image_id, _ in hits],
            scores=[round(float(score), 6) for _, score in hits],
            latency_ms=round(latency_ms, 3),
            client=client,
        )


@dataclass(frozen=True)
class FeedbackRecord:
    """A person's mark on one result of one search."""

    query_id: str
    image_id: str
    relevant: bool
    rank: int  # 1-based position of the image in that search's results
    at: datetime = field(default_factory=now_utc)
    client: str = ""
    feedback_id: str = field(default_factory=new_query_id)
    kind: Literal["feedback"] = "feedback"


Record = QueryRecord | FeedbackRecord


def to_json(record: Record) -> dict[str, Any]:
    row = asdict(record)
    row["at"] = record.at.isoformat()
    return row


def from_json(row: dict[str, Any]) -> Record:
    data = dict(row)
    data["at"] = datetime.fromisoformat(data["at"])
    if data.get("kind") == "feedback":
        return FeedbackRecord(**data)
    return QueryRecord(**data)
