"""Drive ``dove stack`` for the integration tests: a state folder PostgreSQL can reach, the
CLI as a subprocess, the stack's processes and the sockets they listen on (psutil).

The library never imports ``infra``: this module only runs the ``dove stack`` command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dove_model.testing.orchestrators import BIN, tool_env


def reachable_state_dir(prefix: str = "dove-stack-") -> Path:
    """A fresh state folder under the system temp folder, searchable by other users: as
    root the stack runs PostgreSQL as ``postgres``, which cannot enter pytest's 0700
    folders."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o711)
    return path


@dataclass
class StackCli:
    """``dove stack <command> --project P --state-dir S`` in ``project``."""

    project: Path
    state_dir: Path

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "dove"), "stack", *args]
        command += ["--project", str(self.project), "--state-dir", str(self.state_dir)]
        return subprocess.run(
            command,
            cwd=self.project,
            env=tool_env(self.project),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str, timeout: float = 900) -> str:
        done = self.run(*args, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"dove stack {args}: exit {done.returncode}\n{done.stderr}")
        return done.stdout + done.stderr

    def up(self, *args: str) -> tuple[str, float]:
        """``up`` with any free ports; its output and how long it took."""
        started = time.monotonic()
        ports = [f"--{name}-port" for name in ("postgres", "mlflow", "airflow", "service")]
        free = [arg for port in ports for arg in (port, "0")]
        out = self.check("up", *free, *args)
        return out, time.monotonic() - started

    def status(self) -> dict[str, Any]:
        return json.loads(self.check("status", "--json", timeout=120))

    def remove(self) -> None:
        """Stop whatever runs and delete the state folder."""
        self.run("down", timeout=300)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def stack_pids(status: dict[str, Any]) -> set[int]:
    """Every live process of the stack: each recorded process and all its descendants."""
    import psutil

    roots = [status["postgres"]["pid"], status["mlflow"]["pid"], status["service"]["pid"]]
    roots += list(status["airflow"]["pids"].values())
    found: set[int] = set()
    for pid in filter(None, roots):
        try:
            process = psutil.Process(pid)
            found |= {pid} | {child.pid for child in process.children(recursive=True)}
        except psutil.NoSuchProcess:
            continue
    return found


def running(pids: set[int]) -> set[int]:
    """The pids of ``pids`` that still run (a zombie waiting for its parent does not)."""
    import psutil

    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def listening(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket and bound UDP socket of ``pids``."""
    import psutil

    found = []
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for conn in connections:
            is_udp = conn.type == 2  # SOCK_DGRAM
            if conn.status == psutil.CONN_LISTEN or (is_udp and conn.laddr):
                found.append((pid, conn.laddr.ip, conn.laddr.port))
    return sorted(set(found))
