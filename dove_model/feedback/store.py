"""What a query-log store does, and the store the settings name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from dove_model.errors import ConfigError
from dove_model.feedback.records import FeedbackRecord, QueryRecord, Record
from dove_model.loop_params import QueryLogParams

DIR_ENV = "DOVE_QUERYLOG_DIR"  # overrides feedback.query_log.dir (tests, a mounted volume)
# overrides feedback.query_log.store: `dove stack` points the service and its tasks at its
# PostgreSQL this way, whatever params.yaml says
STORE_ENV = "DOVE_QUERYLOG_STORE"
STORES = ("files", "postgres")


class LogStore(Protocol):
    """A durable, bounded store of query and feedback records."""

    def write(self, records: Sequence[Record]) -> None: ...

    def queries(self, since: datetime | None = None) -> list[QueryRecord]: ...

    def feedback(self, since: datetime | None = None) -> list[FeedbackRecord]: ...

    def expire(self) -> int:
        """Delete what is past the retention; returns how many files or rows went."""
        ...

    def close(self) -> None: ...


def open_store(params: QueryLogParams, env: Mapping[str, str]) -> LogStore:
    """The store ``params.store`` (or ``$DOVE_QUERYLOG_STORE``) names; the PostgreSQL DSN
    comes from ``env[params.dsn_env]``."""
    store = env.get(STORE_ENV) or params.store
    if store not in STORES:
        raise ConfigError(f"${STORE_ENV}={store!r}: use one of {', '.join(STORES)}")
    if store == "postgres":
        from dove_model.feedback.postgres import PostgresStore

        dsn = env.get(params.dsn_env)
        if not dsn:
            raise ConfigError(f"the query log's store is postgres but ${params.dsn_env} is not set")
        return PostgresStore(dsn, params)
    from dove_model.feedback.files import FileStore

    return FileStore(Path(env.get(DIR_ENV) or params.dir), params)
