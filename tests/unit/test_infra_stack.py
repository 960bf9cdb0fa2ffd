"""`dove stack` without its services: stopping a process session (workers in their own
process groups, a process that ignores SIGTERM, one re-parented to init), port choice,
credentials files, Airflow's settings and the one-line error."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.stack import airflow, processes
from infra.stack.config import Layout, StackError
from infra.stack.credentials import ensure_all, ensure_keys
from infra.stack.ports import any_free_port, choose_ports, is_free
from infra.stack.state import ProcessRecord

# a leader, a child in its own process group that ignores SIGTERM, and a double-forked
# grandchild re-parented to init: all of them stay in the leader's session
TREE = """
import os, signal, subprocess, sys, time
ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
subprocess.Popen([sys.executable, "-c", ignore], process_group=0)
orphan = "import os, time\\nif os.fork() == 0:\\n    time.sleep(300)"
subprocess.run([sys.executable, "-c", orphan])
time.sleep(300)
"""


def test_stop_ends_the_whole_session_then_sigkills_what_ignores_sigterm(tmp_path: Path) -> None:
    record = processes.spawn(
        "tree",
        [sys.executable, "-c", TREE],
        log=tmp_path / "logs" / "tree.log",
        cwd=tmp_path,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 30
    while len(processes.session_members(record)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    members = processes.session_members(record)
    assert len(members) == 3 and processes.is_alive(record)
    assert len({os.getpgid(pid) for pid in members}) == 2  # the leader's group and another
    assert stat.S_IMODE((tmp_path / "logs" / "tree.log").stat().st_mode) == 0o600

    started = time.monotonic()
    assert processes.stop(record, timeout=2) == []
    assert time.monotonic() - started < 10
    assert processes.session_members(record) == []
    assert not processes.is_alive(record)
    assert processes.stop(record) == []  # stopping again is a no-op


def test_a_reused_pid_is_not_taken_for_the_recorded_process(tmp_path: Path) -> None:
    record = processes.spawn(
        "sleep", ["sleep", "30"], log=tmp_path / "s.log", cwd=tmp_path, env=dict(os.environ)
    )
    assert processes.is_alive(record)
    other = ProcessRecord(record.pid, record.start + 1, "x", "y")
    assert not processes.is_alive(other)
    os.kill(record.pid, signal.SIGKILL)
    os.waitpid(record.pid, 0)
    assert not processes.is_alive(record)


def test_ports_are_remembered_asked_for_or_free() -> None:
    remembered = {"postgres": any_free_port(), "mlflow": 5999}
    chosen = choose_ports({"mlflow": None, "airflow": 0}, remembered, running=set())
    assert chosen["postgres"] == remembered["postgres"] and chosen["mlflow"] == 5999
    assert chosen["airflow"] not in (0, 8080) or is_free(8080)
    assert set(chosen) == {"postgres", "mlflow", "airflow", "service"}
    assert choose_ports({"mlflow": 6001}, remembered, set())["mlflow"] == 6001
    assert choose_ports({"mlflow": 0}, remembered, {"mlflow"})["mlflow"] == 5999  # running
    with pytest.raises(StackError, match="dove stack down"):
        choose_ports({"mlflow": 6001}, remembered, running={"mlflow"})


def test_credentials_are_generated_once_private_and_reused(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "state")
    first, keys = ensure_all(layout), ensure_keys(layout)
    assert stat.S_IMODE(layout.credentials.stat().st_mode) == 0o700
    for name, account in first.items():
        path = layout.credential(name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text()) == {
            "username": account.username,
            "password": account.password,
        }
    assert ensure_all(layout) == first and ensure_keys(layout) == keys
    assert len({a.password for a in first.values()}) == len(first)


def test_airflow_settings_follow_the_port_and_the_cores(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    keys = {k: "k" for k in ("airflow_fernet_key", "airflow_jwt_secret", "airflow_api_secret_key")}
    cfg = airflow.settings(layout, 18080, 15432, tmp_path / "dags", keys)
    assert cfg["core"]["execution_api_server_url"] == "http://127.0.0.1:18080/execution/"
    assert cfg["core"]["parallelism"] == str(airflow.cores())
    assert cfg["core"]["executor"] == "LocalExecutor"
    assert cfg["core"]["simple_auth_manager_all_admins"] == "False"
    assert (cfg["api"]["host"], cfg["api"]["port"]) == ("127.0.0.1", "18080")
    assert "@127.0.0.1:15432/airflow" in cfg["database"]["sql_alchemy_conn"]
    assert ":" not in cfg["database"]["sql_alchemy_conn"].split("//")[1].split("@")[0]
    assert airflow.command("scheduler")[-1] == "--skip-serve-logs"


def test_up_fails_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "dags").mkdir()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dove")), "stack", "up", "--pg-bindir", "/nonexistent"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("error: /nonexistent: no PostgreSQL server binaries")


def test_the_service_starts_from_the_store_by_the_tag_its_index_names(tmp_path: Path) -> None:
    """`up` rolls out only when the current index version was built by @champion and its
    model is in the store; the service gets that tag, never a pinned model folder."""
    from infra.stack import service
    from infra.stack.environment import base_env

    root = tmp_path / "index"
    assert service.indexed_model(root) == {}  # no index yet: a roll-out is needed
    version = root / "versions" / "20260101T000000000000Z-abcdef"
    version.mkdir(parents=True)
    model = {"tag": "dove-rs-retrieval:abc", "model_version": 3}
    meta = {"format_version": 1, "model_fingerprint": "f" * 64, "model": model}
    (version / "meta.json").write_text(json.dumps(meta))
    (root / "CURRENT").write_text(version.name + "\n")
    assert service.indexed_model(root) == {"tag": "dove-rs-retrieval:abc", "model_version": "3"}

    home = tmp_path / "bentoml"
    assert not service.in_store(home, "dove-rs-retrieval:abc")
    (home / "models" / "dove-rs-retrieval" / "abc").mkdir(parents=True)
    assert service.in_store(home, "dove-rs-retrieval:abc")
    for bad in (None, "", "dove-rs-retrieval", "../models:abc", "a/b:c"):
        assert not service.in_store(home, bad)

    layout = Layout(tmp_path / "state")
    base = base_env({"DOVE_MODEL_DIR": "/pinned", "PATH": "/usr/bin"})
    env = service.serve_env(base, layout, tmp_path / "params.yaml", root, "dove-rs-retrieval:abc")
    assert env["DOVE_MODEL_TAG"] == "dove-rs-retrieval:abc" and "DOVE_MODEL_DIR" not in env
    assert env["BENTOML_HOME"] == str(layout.bentoml_home.resolve())
    assert env["DOVE_INDEX_DIR"] == str(root.resolve())
