"""The Great Expectations suite of feedback pairs, run by ``dove feedback export`` beside
the caption and split suites of the data gate (dove_model/quality/suites.py).

Two tables: ``feedback_pairs`` (one row per pair, ``ref`` = query id / image id) and
``feedback_summary`` (one row of figures over the export).
"""

from __future__ import annotations

import re

import great_expectations.expectations as gxe
import pandas as pd

from dove_model.loop_params import FeedbackExpectations
from dove_model.model.tokens import tokenize
from dove_model.quality.suites import CRITICAL, WARNING, Check, check

# a query that is not a caption: a URL, an e-mail, a file name, or a code (a word mixing
# letters and digits such as "A12B-44", or a run of 4+ digits)
NOT_CAPTION = (
    r"(?i)(?:https?://|www\.|\S+@\S+\.\w+|\.(?:jpg|jpeg|png|tif|tiff|json|csv)\b"
    r"|\b(?=[a-z_-]*\d)(?=\d*[a-z])[a-z0-9_-]{3,}\b|\d{4,})"
)


def feedback_checks(p: FeedbackExpectations) -> dict[str, list[Check]]:
    low, high = p.relevant_share
    return {
        "feedback_pairs": [
            check(
                "feedback_query_is_a_caption",
                CRITICAL,
                gxe.ExpectColumnValuesToNotMatchRegex,
                column="caption",
                regex=NOT_CAPTION,
                mostly=1.0 - p.max_not_caption_share,
            ),
            check(
                "feedback_queries_not_near_duplicates",
                WARNING,
                gxe.ExpectColumnValuesToBeInSet,
                column="near_duplicate",
                value_set=[False],
                mostly=1.0 - p.max_near_duplicate_share,
            ),
        ],
        "feedback_summary": [
            check(
                "feedback_volume",
                CRITICAL,
                gxe.ExpectColumnValuesToBeBetween,
                column="relevant_pairs",
                min_value=p.min_pairs,
            ),
            check(
                "feedback_label_balance",
                WARNING,
                gxe.ExpectColumnValuesToBeBetween,
                column="relevant_share",
                min_value=low,
                max_value=high,
            ),
            check(
                "feedback_no_source_floods",
                CRITICAL,
                gxe.ExpectColumnValuesToBeBetween,
                column="max_client_share",
                max_value=p.max_client_share,
            ),
        ],
    }


def is_not_caption(text: str) -> bool:
    return re.search(NOT_CAPTION, text) is not None


def near_duplicates(captions: pd.Series, threshold: float) -> pd.Series:
    """True for a query whose token set is at least ``threshold`` Jaccard-similar to an earlier,
    different query text (templated or scripted queries; the same text twice is not one)."""
    seen: list[frozenset[str]] = []
    flags = []
    for text in captions.astype(str):
        tokens = frozenset(tokenize(text))
        flags.append(
            any(
                tokens != other and len(tokens & other) / max(len(tokens | other), 1) >= threshold
                for other in seen
            )
        )
        if tokens not in seen:
            seen.append(tokens)
    return pd.Series(flags, index=captions.index, dtype=bool)


def feedback_tables(pairs: pd.DataFrame, p: FeedbackExpectations) -> dict[str, pd.DataFrame]:
    """The two tables the suite validates."""
    marked = len(pairs)
    relevant = int(pairs["relevant"].sum()) if marked else 0
    clients = pairs["client"].value_counts(normalize=True) if marked else pd.Series(dtype=float)
    table = pd.DataFrame(
        {
            "ref": ("query " + pairs["query_id"] + " image " + pairs["image_id"]).astype(str),
            "caption": pairs["caption"].astype(str),
            "near_duplicate": near_duplicates(pairs["caption"], p.near_duplicate_jaccard),
        }
    )
    summary = pd.DataFrame(
        {
            "ref": ["export"],
            "relevant_pairs": [relevant],
            "relevant_share": [relevant / marked if marked else 0.0],
            "max_client_share": [float(clients.max()) if len(clients) else 0.0],
        }
    )
    return {"feedback_pairs": table, "feedback_summary": summary}
