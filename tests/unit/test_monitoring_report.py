"""``dove monitor``'s report: per model version, drift of the window's queries and one figure
per day, online proxies from the marks, a dated HTML page with plots, latest.json and a
Prometheus text file. The embedding here is a bag of words (what the report does with it is
under test, not a model)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from dove_model.feedback.records import FeedbackRecord, QueryRecord
from dove_model.loop_params import MonitoringParams
from dove_model.model.tokens import tokenize
from dove_model.monitoring.report import monitor, write_report

UNTIL = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
TRAIN_WORDS = [
    "river", "lake", "forest", "houses", "roads", "trees",
    "fields", "green", "white", "many", "small", "large",
]  # fmt: skip
NEW_WORDS = [
    "solar", "panels", "wind", "turbines", "container",
    "cranes", "glacier", "volcano", "crater", "dune",
]  # fmt: skip


def bag_of_words(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 256))
    for row, text in enumerate(texts):
        for word in tokenize(text):
            out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
    return out


def sentences(rng: np.random.Generator, words: list[str], n: int) -> list[str]:
    return [" ".join(rng.choice(words, 4)) for _ in range(n)]


def searches(texts: list[str], at: datetime, version: str = "5") -> list[QueryRecord]:
    return [
        replace(
            QueryRecord.of_search(t, 5, [("a", 1.0), ("b", 0.5)], (version, "i1"), 1, "text"), at=at
        )
        for t in texts
    ]


def test_the_report_shows_drift_on_the_shifted_day_and_the_proxies(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference = bag_of_words(sentences(rng, TRAIN_WORDS, 400))
    yesterday = searches(sentences(rng, TRAIN_WORDS, 80), UNTIL - timedelta(days=1))
    today = searches(sentences(rng, NEW_WORDS, 80), UNTIL - timedelta(hours=2))
    other = searches(sentences(rng, NEW_WORDS, 5), UNTIL, version="4")
    marks = [FeedbackRecord(q.query_id, "a", n % 2 == 0, 1) for n, q in enumerate(today[:20])]
    params = MonitoringParams(min_queries=50)
    result = monitor(
        [*yesterday, *today, *other], marks, bag_of_words, reference, "5", params, UNTIL
    )
    day_before, last_day = list(result.daily_drift.values())[-2:]
    assert day_before.drifted is False and last_day.drifted is True
    assert result.drift.drifted is True and result.drift.n_queries == 80  # version 4 not in it
    page = write_report(result, params, tmp_path)
    text = page.read_text()
    assert page.name == "report-2026-12-06.html" and text.count("data:image/png;base64,") == 3
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["drift"]["drifted"] is True and latest["model_version"] == "5"
    assert latest["feedback_share"] == 20 / 80 and latest["precision_at_k"] == 0.5
    prom = (tmp_path / "metrics.prom").read_text()
    assert 'dove_query_drift{model_version="5"} 1.0' in prom
    assert 'dove_feedback_precision_at_k_daily{model_version="5"} 0.5' in prom
