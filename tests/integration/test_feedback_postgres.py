"""The query log in a real, private PostgreSQL cluster (``initdb`` + ``pg_ctl`` on 127.0.0.1,
the stack's own code: infra/stack/postgres.py), through the background writer: records come
back as written, retention deletes old rows, and a database that goes away only costs the
records sent meanwhile (counted), never an exception; it comes back without a restart."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from dove_model.feedback.postgres import PostgresStore
from dove_model.feedback.records import FeedbackRecord, QueryRecord
from dove_model.feedback.writer import BackgroundWriter
from dove_model.loop_params import QueryLogParams
from dove_model.testing.stack import reachable_state_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, object]]:
    """(DSN of a fresh database, a stop/start handle) of a private cluster."""
    from dove_model.serving.launch import free_port
    from infra.stack import postgres
    from infra.stack.config import Layout, StackError
    from infra.stack.credentials import Account

    try:
        server = postgres.host_server(postgres.find_bindir())
    except StackError as exc:
        pytest.skip(str(exc))
    root = reachable_state_dir("dove-querylog-pg-")
    layout = Layout(root)
    log = root / "postgres.log"
    admin = Account("dove_admin", secrets.token_hex(12))
    postgres.initdb(layout, server, admin, root / "initdb.log")
    postgres.prepare_log(log, server.owner)
    port = free_port()
    postgres.start(layout, server, port, log)
    handle = Handle(layout, server, port, log)
    try:
        yield f"postgresql://{admin.username}:{admin.password}@127.0.0.1:{port}/postgres", handle
    finally:
        postgres.stop(layout, server, log)
        shutil.rmtree(root, ignore_errors=True)


class Handle:
    def __init__(self, layout: object, server: object, port: int, log: Path) -> None:
        self.layout, self.server, self.port, self.log = layout, server, port, log

    def stop(self) -> None:
        from infra.stack import postgres

        postgres.stop(self.layout, self.server, self.log)  # type: ignore[arg-type]

    def start(self) -> None:
        from infra.stack import postgres

        postgres.start(self.layout, self.server, self.port, self.log)  # type: ignore[arg-type]


def query(text: str, model: str = "4") -> QueryRecord:
    return QueryRecord.of_search(text, 2, [("a", 0.9), ("b", 0.1)], (model, "v2"), 1.0, "text")


def test_records_round_trip_through_the_writer(cluster: tuple[str, Handle]) -> None:
    dsn, _ = cluster
    store = PostgresStore(dsn, QueryLogParams(store="postgres"))
    writer = BackgroundWriter(store, queue_size=100)
    searches = [query(f"a harbour {i}") for i in range(5)]
    for record in searches:
        writer.submit(record)
    writer.submit(FeedbackRecord(searches[0].query_id, "b", False, 2))
    writer.close()
    assert writer.counts.written == 6 and writer.counts.failed == 0
    again = PostgresStore(dsn, QueryLogParams(store="postgres"))
    back = {q.query_id: q for q in again.queries()}
    assert back[searches[3].query_id] == searches[3]
    (mark,) = [f for f in again.feedback() if f.query_id == searches[0].query_id]
    assert (mark.image_id, mark.relevant, mark.rank) == ("b", False, 2)
    assert again.queries(since=searches[4].at) == [searches[4]]
    again.close()


def test_retention_deletes_old_rows(cluster: tuple[str, Handle]) -> None:
    dsn, _ = cluster
    store = PostgresStore(dsn, QueryLogParams(store="postgres", retention_days=1))
    old = replace(query("an old airport"), at=query("x").at - timedelta(days=3))
    new = query("a new airport")
    store.write([old, new])
    assert store.expire() >= 1
    kept = {q.query_id for q in store.queries()}
    assert new.query_id in kept and old.query_id not in kept
    store.close()


def test_a_database_that_goes_away_costs_records_not_errors(cluster: tuple[str, Handle]) -> None:
    dsn, server = cluster
    store = PostgresStore(dsn, QueryLogParams(store="postgres"))
    store.write([query("before")])
    server.stop()
    try:
        writer = BackgroundWriter(store, queue_size=100, batch_size=1)
        assert all(writer.submit(query(f"while down {i}")) for i in range(3))
        writer.close()
        assert writer.counts.failed == 3 and writer.counts.written == 0
    finally:
        server.start()
    store.write([query("after")])  # the connection is reopened
    texts = {q.text for q in store.queries()}
    assert {"before", "after"} <= texts and "while down 0" not in texts
    store.close()
