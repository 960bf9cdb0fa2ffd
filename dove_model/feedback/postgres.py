"""The query log in PostgreSQL (the stack's cluster, or any other): two tables, bounded by
``retention_days`` (``expire`` deletes older rows; the background writer calls it hourly).

The connection is opened on first use and reopened after an error, so a database that was
down comes back without a restart. The DSN is a secret: it comes from the environment,
never from ``params.yaml``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dove_model.feedback.records import FeedbackRecord, QueryRecord, Record
from dove_model.loop_params import QueryLogParams

SCHEMA = """
CREATE TABLE IF NOT EXISTS dove_query_log (
    query_id text PRIMARY KEY, at timestamptz NOT NULL, text text, text_sha256 text NOT NULL,
    k integer NOT NULL, model_version text NOT NULL, index_version text,
    image_ids jsonb NOT NULL, scores jsonb NOT NULL, latency_ms double precision NOT NULL,
    client text NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS dove_query_log_at ON dove_query_log (at);
CREATE TABLE IF NOT EXISTS dove_feedback (
    feedback_id text PRIMARY KEY, query_id text NOT NULL, image_id text NOT NULL,
    relevant boolean NOT NULL, rank integer NOT NULL, at timestamptz NOT NULL,
    client text NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS dove_feedback_at ON dove_feedback (at);
"""
QUERY_COLUMNS = (
    "query_id, at, text, text_sha256, k, model_version, index_version, image_ids, scores, "
    "latency_ms, client"
)
FEEDBACK_COLUMNS = "feedback_id, query_id, image_id, relevant, rank, at, client"


class PostgresStore:
    def __init__(self, dsn: str, params: QueryLogParams) -> None:
        self.dsn = dsn
        self.params = params
        self._lock = threading.Lock()
        self._connection: Any = None

    def _connect(self) -> Any:
        import psycopg2

        if self._connection is None or self._connection.closed:
            self._connection = psycopg2.connect(self.dsn, connect_timeout=5)
            self._connection.autocommit = False
            with self._connection, self._connection.cursor() as cursor:
                cursor.execute(SCHEMA)
        return self._connection

    def _run(
        self,
        statement: str,
        rows: Sequence[tuple[Any, ...]] | None = None,
        args: tuple[Any, ...] = (),
    ) -> Any:
        from psycopg2.extras import execute_values

        with self._lock:
            connection = self._connect()
            try:
                with connection, connection.cursor() as cursor:
                    if rows is None:
                        cursor.execute(statement, args)
                        return cursor.fetchall() if cursor.description else cursor.rowcount
                    execute_values(cursor, statement, rows)
                    return None
            except Exception:
                connection.close()  # reopened on the next call
                raise

    def write(self, records: Sequence[Record]) -> None:
        queries = [_query_row(r) for r in records if isinstance(r, QueryRecord)]
        marks = [_feedback_row(r) for r in records if isinstance(r, FeedbackRecord)]
        if queries:
            self._run(
                f"INSERT INTO dove_query_log ({QUERY_COLUMNS}) VALUES %s "
                "ON CONFLICT (query_id) DO NOTHING",
                queries,
            )
        if marks:
            self._run(
                f"INSERT INTO dove_feedback ({FEEDBACK_COLUMNS}) VALUES %s "
                "ON CONFLICT (feedback_id) DO NOTHING",
                marks,
            )

    def _select(self, table: str, columns: str, since: datetime | None) -> list[tuple[Any, ...]]:
        where, args = ("", ()) if since is None else (" WHERE at >= %s", (since,))
        return list(self._run(f"SELECT {columns} FROM {table}{where} ORDER BY at", args=args))

    def queries(self, since: datetime | None = None) -> list[QueryRecord]:
        rows = self._select("dove_query_log", QUERY_COLUMNS, since)
        records = [dict(zip(QUERY_COLUMNS.split(", "), r, strict=True)) for r in rows]
        return [
            QueryRecord(**{**r, "image_ids": list(r["image_ids"]), "scores": list(r["scores"])})
            for r in records
        ]

    def feedback(self, since: datetime | None = None) -> list[FeedbackRecord]:
        rows = self._select("dove_feedback", FEEDBACK_COLUMNS, since)
        return [
            FeedbackRecord(**dict(zip(FEEDBACK_COLUMNS.split(", "), r, strict=True))) for r in rows
        ]

    def expire(self) -> int:
        days = float(self.params.retention_days)
        gone = 0
        for table in ("dove_query_log", "dove_feedback"):
            gone += int(
                self._run(
                    f"DELETE FROM {table} WHERE at < now() - make_interval(secs => %s)",
                    args=(days * 86400,),
                )
            )
        return gone

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _query_row(r: QueryRecord) -> tuple[Any, ...]:
    ids, scores = json.dumps(r.image_ids), json.dumps(r.scores)
    return (r.query_id, r.at, r.text, r.text_sha256, r.k, r.model_version, r.index_version,
            ids, scores, r.latency_ms, r.client)  # fmt: skip


def _feedback_row(r: FeedbackRecord) -> tuple[Any, ...]:
    return (r.feedback_id, r.query_id, r.image_id, r.relevant, r.rank, r.at, r.client)
