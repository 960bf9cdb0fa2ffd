"""The local file lock for a sqlite registry (one host, one database file).

Correctness across hosts comes from the shared lease in the tracking store
(:mod:`dove_model.registry.lease`); this file lock only keeps several runs on one machine
from writing one sqlite file at once (sqlite rejects concurrent schema migrations, and
serialising whole registrations keeps the challenger in registration order). A tracking
server needs no local lock: nothing on this host is shared with the other hosts anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from dove_model.errors import DoveError
from dove_model.registry.tracking import sqlite_path

LOCK_TIMEOUT_S = 600.0


def lock_file_for(tracking_uri: str) -> Path | None:
    """``<db>.registry.lock`` beside a sqlite database; None for a tracking server."""
    db = sqlite_path(tracking_uri)
    return None if db is None else db.with_name(db.name + ".registry.lock")


@contextlib.contextmanager
def registry_lock(tracking_uri: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[Path | None]:
    """Hold the sqlite database's file lock (nothing for a server); a stuck holder becomes
    a DoveError after ``timeout``."""
    path = lock_file_for(tracking_uri)
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        with lock:
            yield path
    except Timeout:
        raise DoveError(f"{path}: registry lock still held after {timeout:.0f} s") from None
