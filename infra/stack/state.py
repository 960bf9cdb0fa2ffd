"""The stack's JSON state file: ports, the processes it started, what it serves.

Written atomically (a temporary sibling renamed into place), so an interrupted ``up``
leaves the previous state or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dove_model.atomic import atomic_path
from infra.stack.config import StackError

STATE_VERSION = 1


@dataclass(frozen=True)
class ProcessRecord:
    """A process the stack started: its pid and start time (a reused pid is not ours)."""

    pid: int
    start: int  # /proc/<pid>/stat field 22, clock ticks since boot
    command: str
    log: str


@dataclass
class State:
    project: str = ""
    params_file: str = ""
    dags_folder: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    pg_bindir: str = ""
    service_note: str = ""  # what the service serves, or why it is not deployed
    marks: dict[str, str] = field(default_factory=dict)  # steps done once: what they did
    runtime: str = ""  # processes | containers: how the running services were started
    containers: dict[str, str] = field(default_factory=dict)  # service -> container name

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        return {"version": STATE_VERSION, **raw}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> State:
        processes = {k: ProcessRecord(**v) for k, v in (raw.get("processes") or {}).items()}
        return cls(
            project=str(raw.get("project", "")),
            params_file=str(raw.get("params_file", "")),
            dags_folder=str(raw.get("dags_folder", "")),
            ports={k: int(v) for k, v in (raw.get("ports") or {}).items()},
            processes=processes,
            pg_bindir=str(raw.get("pg_bindir", "")),
            service_note=str(raw.get("service_note", "")),
            marks={k: str(v) for k, v in (raw.get("marks") or {}).items()},
            runtime=str(raw.get("runtime", "")),
            containers={k: str(v) for k, v in (raw.get("containers") or {}).items()},
        )


def load_state(path: Path) -> State:
    """The saved state, or an empty one before the first ``up``."""
    if not path.is_file():
        return State()
    try:
        return State.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError) as exc:
        raise StackError(f"{path}: unreadable stack state ({exc}); move it away") from None


def save_state(path: Path, state: State) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o600)
