"""The default query-log store: JSON lines in rotated files.

The current file is ``querylog-<UTC time>-<n>.jsonl``; past ``max_file_bytes`` a new one is
started. Each batch is flushed and fsynced before ``write`` returns (durable: a crash loses at
most the records still queued). Retention: files older than ``retention_days`` and all but
the newest ``keep_files`` are deleted.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from dove_model.feedback.records import (
    FeedbackRecord,
    QueryRecord,
    Record,
    from_json,
    now_utc,
    to_json,
)
from dove_model.loop_params import QueryLogParams

PREFIX, SUFFIX = "querylog-", ".jsonl"


class FileStore:
    def __init__(self, folder: Path, params: QueryLogParams) -> None:
        self.folder = Path(folder)
        self.params = params
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None
        self._path: Path | None = None
        self._serial = 0

    # ------------------------------------------------------------------ writing
    def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        lines = "".join(json.dumps(to_json(r), separators=(",", ":")) + "\n" for r in records)
        with self._lock:
            handle = self._current()
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
            if handle.tell() >= self.params.max_file_bytes:
                self._rotate()

    def _current(self) -> IO[str]:
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._serial += 1
            stamp = now_utc().strftime("%Y%m%dT%H%M%S%f")
            self._path = self.folder / f"{PREFIX}{stamp}-{os.getpid()}-{self._serial:06d}{SUFFIX}"
            self._handle = self._path.open("a", encoding="utf-8")
        return self._handle

    def _rotate(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._path = None
        self._expire_locked()

    # ---------------------------------------------------------------- retention
    def files(self) -> list[Path]:
        """The log files, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(
            self.folder.glob(f"{PREFIX}*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name)
        )

    def expire(self) -> int:
        with self._lock:
            return self._expire_locked()

    def _expire_locked(self) -> int:
        cutoff = time.time() - self.params.retention_days * 86400
        files = [p for p in self.files() if p != self._path]
        keep = self.params.keep_files - 1  # one slot for the file being written
        old = [p for p in files if p.stat().st_mtime < cutoff]
        surplus = files[: max(len(files) - keep, 0)]
        gone = {*old, *surplus}
        for path in gone:
            path.unlink(missing_ok=True)
        return len(gone)

    # ------------------------------------------------------------------ reading
    def _records(self, since: datetime | None) -> Iterator[Record]:
        for path in self.files():
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    if not line.endswith("\n"):
                        break  # a line cut by a crash: the rest of the file is not there
                    record = from_json(json.loads(line))
                    if since is None or record.at >= since:
                        yield record

    def queries(self, since: datetime | None = None) -> list[QueryRecord]:
        return [r for r in self._records(since) if isinstance(r, QueryRecord)]

    def feedback(self, since: datetime | None = None) -> list[FeedbackRecord]:
        return [r for r in self._records(since) if isinstance(r, FeedbackRecord)]

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
