"""One writer at a time on the registry.

MLflow's registry has no compare-and-set on aliases, and sqlite rejects concurrent schema
migrations. Every read-decide-write sequence (register, promote, rollback) therefore runs
under an exclusive file lock: next to the database for sqlite stores, else under the
project's ``mlruns/`` (which covers several pipeline runs on one host against a server).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from dove_model.errors import DoveError
from dove_model.registry.tracking import sqlite_path

LOCK_TIMEOUT_S = 600.0


def lock_file_for(tracking_uri: str, root: Path | None = None) -> Path:
    db = sqlite_path(tracking_uri)
    if db is not None:
        return db.with_name(db.name + ".registry.lock")
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]
    return (root or Path.cwd()) / "mlruns" / f".registry-{digest}.lock"


@contextlib.contextmanager
def registry_lock(
    tracking_uri: str, root: Path | None = None, timeout: float = LOCK_TIMEOUT_S
) -> Iterator[Path]:
    """Hold the registry's file lock; a stuck holder becomes a DoveError after ``timeout``."""
    path = lock_file_for(tracking_uri, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        with lock:
            yield path
    except Timeout:
        raise DoveError(f"{path}: registry lock still held after {timeout:.0f} s") from None
