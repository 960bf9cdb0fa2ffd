"""The query log: rotation, retention, durability, the privacy setting, and a full or failing
store that never reaches a search (the background writer)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from dove_model.feedback.files import FileStore
from dove_model.feedback.loop import FeedbackLoop, Mark
from dove_model.feedback.ratelimit import RateLimiter
from dove_model.feedback.recent import FeedbackRefused
from dove_model.feedback.records import FeedbackRecord, QueryRecord, text_hash
from dove_model.feedback.writer import BackgroundWriter
from dove_model.loop_params import FeedbackParams, QueryLogParams


def search(text: str = "a river and a bridge", privacy: str = "text") -> QueryRecord:
    hits = [("img_1", 0.9), ("img_2", 0.5)]
    return QueryRecord.of_search(text, 2, hits, ("7", "v1"), 3.5, privacy)  # type: ignore[arg-type]


def test_records_survive_a_new_store_and_a_cut_last_line(tmp_path: Path) -> None:
    store = FileStore(tmp_path, QueryLogParams())
    written = [search(f"query {i}") for i in range(5)]
    mark = FeedbackRecord(written[0].query_id, "img_2", True, 2)
    store.write([*written, mark])
    store.close()
    (path,) = store.files()
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"query_id": "cut by a cra')  # a crash mid-line
    again = FileStore(tmp_path, QueryLogParams())
    assert [q.query_id for q in again.queries()] == [q.query_id for q in written]
    assert again.queries()[0] == written[0]
    assert again.feedback() == [mark]


def test_files_rotate_and_only_keep_files_are_kept(tmp_path: Path) -> None:
    params = QueryLogParams(max_file_bytes=2048, keep_files=3)
    store = FileStore(tmp_path, params)
    for i in range(60):
        store.write([search(f"query number {i}")])
    store.close()
    files = store.files()
    assert len(files) == 3  # more were written, the oldest deleted
    kept = store.queries()
    assert 0 < len(kept) < 60
    assert kept[-1].text == "query number 59"  # the newest survive


def test_retention_deletes_files_older_than_the_retention(tmp_path: Path) -> None:
    store = FileStore(tmp_path, QueryLogParams(max_file_bytes=1024, retention_days=1))
    for i in range(20):
        store.write([search(f"query {i}")])
    store.close()
    old = store.files()[0]
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert store.expire() == 1
    assert old not in store.files() and store.files()


def test_hash_privacy_keeps_no_text(tmp_path: Path) -> None:
    record = search("a secret airfield near the coast", privacy="hash")
    store = FileStore(tmp_path, QueryLogParams(privacy="hash"))
    store.write([record])
    raw = store.files()[0].read_text()
    assert "airfield" not in raw
    (back,) = store.queries()
    assert back.text is None and back.text_sha256 == text_hash("a secret airfield near the coast")
    assert search("x y", privacy="text").text == "x y"


class BlockedStore(FileStore):
    """A store that hangs until released (a database that stopped answering)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, QueryLogParams())
        self.release = threading.Event()
        self.entered = threading.Event()

    def write(self, records: object) -> None:  # type: ignore[override]
        self.entered.set()
        self.release.wait()


class FailingStore(FileStore):
    def write(self, records: object) -> None:  # type: ignore[override]
        raise OSError("disk full")


def test_a_full_queue_drops_and_counts_without_waiting(tmp_path: Path) -> None:
    store = BlockedStore(tmp_path)
    writer = BackgroundWriter(store, queue_size=4, batch_size=1)
    writer.submit(search())
    assert store.entered.wait(30)  # the writer thread is stuck in the store now
    accepted = [writer.submit(search()) for _ in range(10)]  # would hang if submit waited
    assert accepted == [True] * 4 + [False] * 6
    assert writer.counts.dropped == 6
    store.release.set()
    writer.close()
    assert writer.counts.written == 5


def test_a_failing_store_counts_its_losses_and_raises_nothing(tmp_path: Path) -> None:
    writer = BackgroundWriter(FailingStore(tmp_path, QueryLogParams()), queue_size=100)
    assert all(writer.submit(search()) for _ in range(5))
    writer.close()
    assert writer.counts.failed == 5 and writer.counts.written == 0


def loop_with(store: FileStore, **overrides: object) -> FeedbackLoop:
    return FeedbackLoop(FeedbackParams(**overrides), store)  # type: ignore[arg-type]


def test_a_search_with_a_failing_store_still_gets_its_query_id(tmp_path: Path) -> None:
    loop = loop_with(FailingStore(tmp_path, QueryLogParams()))
    query_id = loop.record_search("a lake", 2, [("a", 1.0), ("b", 0.5)], ("1", None), 0.0)
    assert len(query_id) == 32
    record = loop.record_mark(Mark.parse(query_id, "b", True), "client")
    assert record.rank == 2
    loop.close()
    assert loop.writer.counts.failed == 2


def test_marks_of_unknown_ids_are_refused_and_proxies_counted(tmp_path: Path) -> None:
    loop = loop_with(FileStore(tmp_path, QueryLogParams()))
    first = loop.record_search("a lake", 2, [("a", 1.0), ("b", 0.5)], ("3", None), 0.0)
    loop.record_search("a farm", 2, [("c", 1.0), ("d", 0.5)], ("3", None), 0.0)
    with pytest.raises(FeedbackRefused) as unknown:
        loop.record_mark(Mark.parse("0" * 32, "a", True), "c")
    assert unknown.value.status == 404
    with pytest.raises(FeedbackRefused) as not_a_result:
        loop.record_mark(Mark.parse(first, "c", True), "c")
    assert not_a_result.value.status == 404
    loop.record_mark(Mark.parse(first, "a", True), "c")
    loop.record_mark(Mark.parse(first, "b", False), "c")
    proxies = loop.recent.proxies()["3"]
    assert proxies.feedback_share == 0.5 and proxies.precision == 0.5
    loop.record_mark(Mark.parse(first, "b", True), "c")  # changed its mind
    assert loop.recent.proxies()["3"].precision == 1.0
    loop.close()
    assert [f.relevant for f in loop.writer.store.feedback()] == [True, False, True]  # type: ignore[attr-defined]


def test_old_queries_expire_from_what_feedback_accepts(tmp_path: Path) -> None:
    loop = loop_with(FileStore(tmp_path, QueryLogParams()), recent_queries=2)
    ids = [loop.record_search(f"q {i}", 1, [("a", 1.0)], ("1", None), 0.0) for i in range(3)]
    with pytest.raises(FeedbackRefused, match="expired"):
        loop.record_mark(Mark.parse(ids[0], "a", True), "c")
    loop.record_mark(Mark.parse(ids[2], "a", True), "c")
    loop.close()


def test_the_rate_limit_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")  # per client
    now[0] += 1.0  # one token a second
    assert limiter.allow("a") and not limiter.allow("a")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query_id": None, "image_id": "a", "relevant": True}, "query_id must be"),
        ({"query_id": "xyz", "image_id": "a", "relevant": True}, "query_id must be"),
        ({"query_id": "A" * 32, "image_id": "a", "relevant": True}, "query_id must be"),
        ({"query_id": "0" * 32, "image_id": "", "relevant": True}, "image_id must be"),
        ({"query_id": "0" * 32, "image_id": 5, "relevant": True}, "image_id must be"),
        ({"query_id": "0" * 32, "image_id": "x" * 501, "relevant": True}, "longer than"),
        ({"query_id": "0" * 32, "image_id": "a", "relevant": "true"}, "relevant must be"),
        ({"query_id": "0" * 32, "image_id": "a", "relevant": 1}, "relevant must be"),
        ({"query_id": "0" * 32, "image_id": "a", "relevant": None}, "relevant must be"),
    ],
)
def test_bad_marks_are_refused(body: dict[str, object], message: str) -> None:
    with pytest.raises(FeedbackRefused, match=message) as refused:
        Mark.parse(body["query_id"], body["image_id"], body["relevant"])
    assert refused.value.status == 400


def test_the_environment_picks_the_store_over_params(tmp_path: Path) -> None:
    """`dove stack` sets DOVE_QUERYLOG_STORE=postgres for the service and its tasks."""
    from dove_model.errors import ConfigError
    from dove_model.feedback.postgres import PostgresStore
    from dove_model.feedback.store import open_store

    params = QueryLogParams(dir=str(tmp_path / "log"))
    assert isinstance(open_store(params, {}), FileStore)
    with pytest.raises(ConfigError, match=r"\$DOVE_QUERYLOG_DSN is not set"):
        open_store(params, {"DOVE_QUERYLOG_STORE": "postgres"})
    with pytest.raises(ConfigError, match="use one of files, postgres"):
        open_store(params, {"DOVE_QUERYLOG_STORE": "sqlite"})
    dsn = "postgresql://querylog@127.0.0.1:1/querylog"  # connects on first use only
    store = open_store(params, {"DOVE_QUERYLOG_STORE": "postgres", "DOVE_QUERYLOG_DSN": dsn})
    assert isinstance(store, PostgresStore)
    store.close()
    postgres_params = QueryLogParams(store="postgres")
    files = {"DOVE_QUERYLOG_STORE": "files", "DOVE_QUERYLOG_DIR": str(tmp_path)}
    assert isinstance(open_store(postgres_params, files), FileStore)
