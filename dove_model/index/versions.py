"""Versioned index folders: what makes a live index swap possible.

Layout of a versioned index root (``index.out_dir``)::

    CURRENT                      the current version's id (one line), replaced atomically
    versions/<version-id>/       each a complete index folder (see ``archive.py``)

A version id is the UTC time it was written plus a short random suffix
(``20250101T120000123456Z-3fa2c1``): ids sort in the order they were written. Writers put a
new version folder in place first, then flip ``CURRENT`` (``os.replace``), then prune old
versions; a running service polls ``CURRENT`` and swaps when it names another version.

A plain index folder (``meta.json`` directly in it, as written before versions existed, and
by library calls that do not ask for versions) still loads everywhere; it has no versions
and never swaps. It becomes versioned on its first versioned write (``CURRENT`` then wins
over the old top-level files).
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from dove_model.atomic import write_text
from dove_model.errors import ConfigError

POINTER_FILE = "CURRENT"
VERSIONS_DIR = "versions"
_VERSION_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$")


def is_versioned(root: Path | str) -> bool:
    """Whether ``root`` is a versioned index root (it has a pointer or a versions folder)."""
    root = Path(root)
    return (root / POINTER_FILE).is_file() or (root / VERSIONS_DIR).is_dir()


def new_version_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def check_version_id(version: str, where: Path) -> str:
    if not _VERSION_ID.fullmatch(version):
        raise ConfigError(f"{where}: {version[:60]!r} is not an index version id")
    return version


def version_dir(root: Path | str, version: str) -> Path:
    return Path(root) / VERSIONS_DIR / check_version_id(version, Path(root) / VERSIONS_DIR)


def read_pointer(root: Path | str) -> str | None:
    """The version ``CURRENT`` names, or None when ``root`` has no pointer."""
    path = Path(root) / POINTER_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable index pointer ({exc})") from None
    return check_version_id(text, path)


def current_index_dir(root: Path | str) -> tuple[Path, str | None]:
    """(index folder to load, its version id): the version ``CURRENT`` names, or ``root``
    itself (version None) when it is a plain index folder."""
    root = Path(root)
    version = read_pointer(root)
    if version is None:
        if (root / VERSIONS_DIR).is_dir() and not (root / "meta.json").is_file():
            raise ConfigError(f"{root}: versioned index without a {POINTER_FILE} pointer")
        return root, None
    folder = version_dir(root, version)
    if not folder.is_dir():
        raise ConfigError(f"{root / POINTER_FILE}: version {version} not found in {folder.parent}")
    return folder, version


def set_current(root: Path | str, version: str) -> Path:
    """Point ``CURRENT`` at ``version`` (atomically: a reader sees the old or the new id)."""
    folder = version_dir(root, version)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such index version")
    write_text(Path(root) / POINTER_FILE, version + "\n")
    return folder


def list_versions(root: Path | str) -> list[str]:
    """Complete version folders of ``root``, oldest first (temporary folders are skipped)."""
    versions = Path(root) / VERSIONS_DIR
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if p.is_dir() and _VERSION_ID.match(p.name))


def prune_versions(root: Path | str, keep: int) -> list[str]:
    """Delete all but the current version and the ``keep`` newest others; returns the ids
    deleted. A service still searching a deleted version keeps its memory maps (POSIX)."""
    current = read_pointer(root)
    others = [v for v in list_versions(root) if v != current]
    doomed = others[: max(0, len(others) - max(0, keep))]
    for version in doomed:
        shutil.rmtree(version_dir(root, version), ignore_errors=True)
    _remove_abandoned_temporaries(Path(root) / VERSIONS_DIR)
    return doomed


ABANDONED_AFTER_S = 24 * 3600  # a writer's temporary folder untouched this long has crashed


def _remove_abandoned_temporaries(versions: Path) -> None:
    """Temporary folders (``.<id>.*.tmp``) a crashed writer left: full-size, never listed."""
    now = time.time()
    for tmp in versions.glob(".*.tmp"):
        if tmp.is_dir() and now - tmp.stat().st_mtime > ABANDONED_AFTER_S:
            shutil.rmtree(tmp, ignore_errors=True)


def publish_target(root: Path | str) -> tuple[Path, str]:
    """A fresh version folder path under ``root`` (not yet created) and its id."""
    version = new_version_id()
    (Path(root) / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
    return version_dir(root, version), version


def publish(root: Path | str, version: str, keep: int) -> list[str]:
    """Flip ``CURRENT`` to the just-written ``version``, then prune; returns pruned ids."""
    set_current(root, version)
    return prune_versions(root, keep)
