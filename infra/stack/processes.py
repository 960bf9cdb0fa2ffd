"""Start long-running processes detached (each the leader of its own session) and stop
them with everything they started.

A process started here calls ``setsid``: its session id is its pid, and every process it
starts (workers, task processes in their own process groups) keeps that session id even
when it is re-parented. Stopping sends SIGTERM to every process group of the session,
waits, then SIGKILLs what is left. Linux only (``/proc``), as the stack is.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from infra.stack.state import ProcessRecord

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3 is index 0)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _is_zombie(fields: list[str]) -> bool:
    return fields[0] in ("Z", "X")


def is_alive(record: ProcessRecord | None) -> bool:
    """The recorded process still runs (same pid and start time, not a zombie)."""
    if record is None:
        return False
    fields = _stat_fields(record.pid)
    return bool(fields) and not _is_zombie(fields) and int(fields[19]) == record.start


def session_members(record: ProcessRecord) -> list[int]:
    """Live processes of the record's session (started after it: a reused id is not ours)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        ours = fields and int(fields[3]) == record.pid and int(fields[19]) >= record.start
        if ours and not _is_zombie(fields):
            found.append(int(entry.name))
    return sorted(found)


def open_log(path: Path) -> BinaryIO:
    """A log file for appending, created with mode 0600 (a log may name a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "ab")


def spawn(
    name: str, command: Sequence[str], *, log: Path, cwd: Path, env: Mapping[str, str]
) -> ProcessRecord:
    """Start ``command`` in a new session, output appended to ``log``."""
    with open_log(log) as out:
        out.write(f"\n=== {time.strftime('%F %T')} dove stack: start {name}\n".encode())
        out.flush()
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = start_time(process.pid) or 0
    return ProcessRecord(process.pid, started, shlex.join(command), str(log))


def _signal_groups(pids: Sequence[int], signum: int) -> None:
    """``signum`` to each process group among ``pids`` (a group may have left already)."""
    groups = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process (a zombie otherwise lingers)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(record: ProcessRecord, timeout: float = 30.0) -> list[int]:
    """SIGTERM every process group of the session, SIGKILL what is left after ``timeout``;
    returns the pids still alive afterwards (normally none)."""
    members = session_members(record)
    if not members:
        return []
    _signal_groups(members, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not session_members(record):
            return []
        time.sleep(0.2)
    left = session_members(record)
    _signal_groups(left, signal.SIGKILL)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    _reap(record.pid)
    return session_members(record)


def exited_early(record: ProcessRecord) -> bool:
    """The process is gone (used while waiting for a service to answer)."""
    _reap(record.pid)
    return not is_alive(record)
