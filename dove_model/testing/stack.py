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


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when the answer came
    status: int  # 0: no answer (connection refused, reset, timeout)


class SearchLoad:
    """Text searches against a service on 127.0.0.1 from ``workers`` threads, each pausing
    ``pause_s`` between requests, until the block ends or ``max_s`` passes (bounded either
    way); every answer's status is kept. ``with SearchLoad(url) as load: ...``"""

    QUERIES = ("a river crosses the fields", "a dense city", "green farmland", "a blue lake")

    def __init__(self, url: str, workers: int = 2, pause_s: float = 0.05, max_s: float = 1500):
        import threading

        if not url.startswith("http://127.0.0.1:"):
            raise ValueError(f"{url}: SearchLoad only searches a service on 127.0.0.1")
        self.url, self.pause_s = url, pause_s
        self.deadline = time.monotonic() + max_s
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(i,)) for i in range(workers)]

    def _work(self, offset: int) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = offset
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                body = {"query": self.QUERIES[i % len(self.QUERIES)], "k": 5}
                try:
                    status = client.post("/search_images", json=body).status_code
                except httpx.HTTPError:
                    status = 0
                self.answers.append(Answer(time.monotonic(), status))
                i += 1
                self._stop.wait(self.pause_s)

    def __enter__(self) -> SearchLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    def around(self, moment: float, seconds: float) -> int:
        """How many answers came within ``seconds`` before and after ``moment``."""
        return sum(1 for a in self.answers if abs(a.at - moment) <= seconds)


def process_tree(pid: int) -> set[int]:
    """``pid`` and all its live descendants (a restarted worker changes the set)."""
    import psutil

    process = psutil.Process(pid)
    return {pid} | {child.pid for child in process.children(recursive=True)}
