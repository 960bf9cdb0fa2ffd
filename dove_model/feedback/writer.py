"""The background writer: a request only puts its record in a bounded queue and goes on.

A full queue drops the record (counted: ``dropped``); a store that fails or hangs only ever
stalls this thread (its batch is counted in ``failed`` and logged), never a request. The
thread also applies the store's retention once an hour.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dove_model.feedback.records import Record
from dove_model.feedback.store import LogStore

log = logging.getLogger(__name__)
EXPIRE_EVERY_S = 3600.0
_STOP = object()


@dataclass
class WriterCounts:
    """Records written, dropped at a full queue, and lost to a failing store."""

    written: int = 0
    dropped: int = 0
    failed: int = 0
    on_change: Callable[[str, int], None] | None = field(default=None, repr=False)

    def add(self, what: str, n: int) -> None:
        setattr(self, what, getattr(self, what) + n)
        if self.on_change is not None:
            self.on_change(what, n)


class BackgroundWriter:
    def __init__(
        self,
        store: LogStore,
        queue_size: int,
        batch_size: int = 256,
        linger_s: float = 0.0,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.linger_s = linger_s  # wait this long for more records before a write
        self.after_batch = after_batch
        self.counts = WriterCounts()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="query-log", daemon=True)
        self._last_expire = 0.0
        self._thread.start()

    def submit(self, record: Record) -> bool:
        """Queue ``record``; False (and counted) when the queue is full. Never blocks."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.counts.add("dropped", 1)
            return False
        return True

    def _batch(self) -> tuple[list[Record], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch: list[Record] = [first]  # type: ignore[list-item]
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.batch_size:
            try:
                left = deadline - time.monotonic()
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)  # type: ignore[arg-type]
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._batch()
            if batch:
                self._write(batch)
                if self.after_batch is not None:
                    self.after_batch()
            if time.monotonic() - self._last_expire > EXPIRE_EVERY_S:
                self._last_expire = time.monotonic()
                try:
                    self.store.expire()
                except Exception as exc:  # retention is retried next hour
                    log.warning("query log retention failed: %s", exc)

    def _write(self, batch: list[Record]) -> None:
        try:
            self.store.write(batch)
        except Exception as exc:  # a failing store must never reach a request
            self.counts.add("failed", len(batch))
            log.warning("query log store failed, %d records lost: %s", len(batch), exc)
        else:
            self.counts.add("written", len(batch))

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (within ``timeout_s``) and close the store."""
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout_s)
        try:
            self.store.close()
        except Exception as exc:
            log.warning("closing the query log store failed: %s", exc)
