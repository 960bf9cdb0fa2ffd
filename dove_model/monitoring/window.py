"""The queries a figure covers, and the online proxies per model version and day."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from dove_model.feedback.records import FeedbackRecord, QueryRecord


def window_queries(
    queries: list[QueryRecord],
    model_version: str,
    until: datetime,
    days: float,
    limit: int,
) -> list[QueryRecord]:
    """The newest ``limit`` searches of ``model_version`` in ``(until - days, until]`` whose
    text was kept (privacy ``hash`` keeps none: no drift can be measured on them)."""
    start = until - timedelta(days=days)
    found = [
        q
        for q in queries
        if q.model_version == model_version and start < q.at <= until and q.text is not None
    ]
    return sorted(found, key=lambda q: q.at)[-limit:]


def daily_proxies(queries: list[QueryRecord], marks: list[FeedbackRecord]) -> pd.DataFrame:
    """Per model version and UTC day: searches, share with feedback, precision of marks
    (relevant marks / marked results, the latest mark of a result counting)."""
    columns = ["model_version", "day", "searches", "feedback_share", "marked", "precision"]
    if not queries:
        return pd.DataFrame(columns=columns)
    latest: dict[tuple[str, str], bool] = {}
    for mark in sorted(marks, key=lambda m: m.at):
        latest[(mark.query_id, mark.image_id)] = mark.relevant
    per_query: dict[str, list[bool]] = {}
    for (query_id, _), relevant in latest.items():
        per_query.setdefault(query_id, []).append(relevant)
    rows = []
    for q in queries:
        got = per_query.get(q.query_id, [])
        rows.append((q.model_version, q.at.date().isoformat(), bool(got), len(got), sum(got)))
    frame = pd.DataFrame(rows, columns=["model_version", "day", "with", "marked", "relevant"])
    grouped = frame.groupby(["model_version", "day"], as_index=False).agg(
        searches=("with", "size"),
        with_feedback=("with", "sum"),
        marked=("marked", "sum"),
        relevant=("relevant", "sum"),
    )
    grouped["feedback_share"] = grouped["with_feedback"] / grouped["searches"]
    grouped["precision"] = (grouped["relevant"] / grouped["marked"]).where(grouped["marked"] > 0)
    return grouped[columns]
