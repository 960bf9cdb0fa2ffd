"""Typed parameters of the feedback loop: the ``feedback:`` and ``monitoring:`` sections of
``params.yaml`` (query log, relevance feedback, export to a data version, drift monitoring).

A layer below ``config`` (which only adds the two sections to ``Params``): nothing here reads
the environment or the disk.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueryLogParams(_Section):
    """Where each search is recorded: rotated JSONL files by default, PostgreSQL when
    ``store: postgres`` (the DSN from the environment variable ``dsn_env``)."""

    enabled: bool = True
    store: Literal["files", "postgres"] = "files"
    dir: str = "artifacts/querylog"  # files store (DOVE_QUERYLOG_DIR overrides it)
    # text: the query as typed; hash: only its sha256 (then it can never become a caption)
    privacy: Literal["text", "hash"] = "text"
    max_file_bytes: int = Field(16 * 2**20, ge=1024)  # rotate past this size
    keep_files: int = Field(64, ge=1)  # rotated files kept (oldest deleted first)
    retention_days: float = Field(90.0, gt=0)  # rows / files older than this are deleted
    queue_size: int = Field(10_000, ge=1)  # background queue; a full queue drops (counted)
    batch_size: int = Field(256, ge=1)  # records written per store call
    # the writer waits this long for more records before a write (one fsync / INSERT per
    # batch, not per search); a crash loses at most this much of the log
    linger_s: float = Field(0.5, ge=0)
    dsn_env: str = "DOVE_QUERYLOG_DSN"  # postgres store: e.g. postgresql://u:p@127.0.0.1/db


class FeedbackExpectations(_Section):
    """Thresholds of the feedback suite (dove_model/feedback/expectations.py)."""

    min_pairs: int = Field(20, ge=1)  # volume: fewer relevant pairs is no new data version
    relevant_share: tuple[float, float] = (0.2, 0.95)  # label balance (share marked relevant)
    max_client_share: float = Field(0.5, gt=0, le=1)  # one source flooding
    max_near_duplicate_share: float = Field(0.3, gt=0, le=1)  # near-duplicate queries
    near_duplicate_jaccard: float = Field(0.8, gt=0, le=1)  # token-set similarity: a near dup
    max_not_caption_share: float = Field(0.05, ge=0, le=1)  # URLs, codes, ids among queries


class FeedbackExportParams(_Section):
    dir: str = "data/feedback"  # inside the DVC-tracked data/: a new data version
    # committed beside data.dvc, rewritten by each export: prepare's DVC dependency on the
    # feedback (a stage cannot list a path inside data/: a fresh clone has none)
    stamp: str = "data-feedback.json"
    report_dir: str = "reports/feedback"  # summary.json + GE Data Docs of each export
    # a pair whose image is not in the train split is held out (the feedback gate's set)
    hard_negatives: bool = True
    expectations: FeedbackExpectations = FeedbackExpectations()


class FeedbackParams(_Section):
    query_log: QueryLogParams = QueryLogParams()
    recent_queries: int = Field(50_000, ge=1)  # query ids /feedback accepts (kept in memory)
    max_feedback_per_query: int = Field(100, ge=1)
    rate_per_minute: float = Field(120.0, gt=0)  # /feedback per client (key or address)
    rate_burst: int = Field(30, ge=1)
    export: FeedbackExportParams = FeedbackExportParams()
    retrain_min_new_pairs: int = Field(200, ge=1)  # new relevant pairs that trigger retraining


class MonitoringParams(_Section):
    """Drift of the query embeddings from the training captions' (docs/operations.md)."""

    window_days: float = Field(1.0, gt=0)  # the window a drift figure covers
    max_window_queries: int = Field(2000, ge=10)  # newest queries of the window used
    reference_captions: int = Field(2000, ge=10)  # training captions sampled as reference
    # the statistic: squared MMD, RBF kernel, bandwidth = median pairwise distance of the
    # reference; drift when it exceeds mmd_threshold
    mmd_threshold: float = Field(0.005, gt=0)
    far_cosine: float = Field(0.5, ge=-1, le=1)  # a query whose best caption cosine is below
    max_far_share: float = Field(0.3, ge=0, le=1)  # drift too when more queries are far
    min_queries: int = Field(50, ge=2)  # fewer queries in the window: no verdict
    report_dir: str = "reports/monitoring"
    seed: int = 0
