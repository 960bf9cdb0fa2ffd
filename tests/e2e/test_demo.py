"""The README's main command, end to end, on a fresh clone: what ``make demo`` runs
(``python -m dove_model.demo``, after ``make setup``, which CI has already done), with the smoke
parameters so it takes about two minutes instead of six. Data render + ``dvc add``,
``dvc repro`` (prepare -> validate -> train -> evaluate -> register -> deploy), then the
service: page URL, example query, a live search, and a clean stop on SIGTERM.

A fresh clone is what caught a git-ignored ``dvc.lock``, which DVC refuses to read. The
temporary tree of the integration tests does not see the project's own ``.gitignore``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dove_model.serving.launch import free_port
from dove_model.testing.smoke import write_smoke_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        output = log.read_text(errors="replace")
        if text in output:
            return output
        assert proc.poll() is None, f"the demo exited early:\n{output[-4000:]}"
        assert time.monotonic() < deadline, f"no {text!r} after {timeout:.0f} s:\n{output[-4000:]}"
        time.sleep(1)


def _port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_demo_from_a_fresh_clone(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run([git, "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    port = free_port()
    write_smoke_project(clone, {"serve": {"port": port}})
    env = {
        **os.environ,
        "PYTHONPATH": str(clone),  # the clone's code, also in the `dove` stage commands
        # the venv's scripts (`dove`, `dvc`) first, as `uv run` in the Makefile puts them
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "DVC_NO_ANALYTICS": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DOVE_API_KEY", None)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dove_model.demo"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        output = _wait_for_line(log, "press Ctrl-C to stop", proc, timeout=840)
        assert "=== DOVE-Ops demo: pipeline done ===" in output
        assert re.search(r"champion\s+models:/dove-rs-retrieval@champion -> v1", output)
        assert f"search page: http://127.0.0.1:{port}/ui/" in output
        assert re.search(r"^\s+1\. \S+", output, re.MULTILINE), "no example results printed"
        assert (clone / "dvc.lock").is_file()

        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/ui/", timeout=30).status_code == 200
        found = httpx.post(
            f"{url}/search_images", json={"query": "a river in the forest", "k": 3}, timeout=60
        )
        assert found.status_code == 200 and len(found.json()["results"]) == 3

        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while not _port_closed(port):  # the server must not outlive the demo
            assert time.monotonic() < deadline, "the service outlived `make demo`"
            time.sleep(0.5)
    finally:
        if proc.poll() is None:  # a failed assertion: stop the demo and its server cleanly
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
