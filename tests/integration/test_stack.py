"""`dove stack up | status | down` for real: PostgreSQL (initdb + pg_ctl), `mlflow server`
with basic auth on it, Airflow 3 (api-server, scheduler, dag-processor) on it, all as local
processes on 127.0.0.1. One stack for the module, on a smoke project with the repository's
DAGs, in a temporary state folder, on free ports; the DAG stays paused (unpausing would start
its latest weekly slot: test_stack_soak.py runs the DAG)."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dove_model.testing.stack import StackCli, listening, reachable_state_dir, running, stack_pids

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("postgres", "mlflow", "airflow", "service")


def require_postgres() -> None:
    from infra.stack.config import StackError
    from infra.stack.postgres import find_bindir

    try:
        find_bindir()
    except StackError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`dove stack up` once: the CLI, the up output and time, the status right after."""
    from dove_model.testing.smoke import write_smoke_project

    require_postgres()
    project = tmp_path_factory.mktemp("stack-project")
    write_smoke_project(project)
    shutil.copytree(REPO / "dags", project / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    cli = StackCli(project, reachable_state_dir())
    try:
        out, seconds = cli.up("--keep-paused", "--runtime", "processes")
        print(f"dove stack up: {seconds:.1f} s\n{out}")
        yield {"cli": cli, "out": out, "seconds": seconds, "status": cli.status()}
    finally:
        cli.remove()


def account(path: str) -> tuple[str, str]:
    raw = json.loads(Path(path).read_text())
    return raw["username"], raw["password"]


def test_up_brings_postgres_mlflow_and_airflow_up_healthy(stack: dict[str, Any]) -> None:
    status = stack["status"]
    assert set(SERVICES) <= set(status)
    for name in SERVICES:
        assert {"url", "healthy"} <= set(status[name]), name
        assert status[name]["url"].startswith(("http://127.0.0.1:", "postgresql://127.0.0.1:"))
    for name in ("postgres", "mlflow", "airflow"):
        assert status[name]["healthy"] is True, (name, stack["out"])
        path = Path(status[name]["credentials"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        username, password = account(str(path))
        assert username and len(password) >= 32
    # no champion yet: the service is not deployed, and up says how to get one
    assert status["service"]["healthy"] is False
    assert "no @champion" in status["service"]["note"]
    assert "dove stack trigger" in stack["out"]
    logs = {p.name for p in Path(status["logs"]).glob("*.log")}
    assert {"postgres.log", "mlflow.log", "airflow-scheduler.log"} <= logs


def test_mlflow_runs_on_postgresql_and_refuses_requests_without_credentials(
    stack: dict[str, Any],
) -> None:
    mlflow = stack["status"]["mlflow"]
    port = stack["status"]["postgres"]["url"].rsplit(":", 1)[1]
    assert mlflow["backend"] == f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/mlflow"
    api = f"{mlflow['url']}/api/2.0/mlflow/experiments/search"
    assert httpx.post(api, json={"max_results": 5}, timeout=30).status_code == 401
    username, password = account(mlflow["credentials"])
    wrong = httpx.post(api, json={"max_results": 5}, auth=(username, "wrong"), timeout=30)
    assert wrong.status_code == 401
    found = httpx.post(api, json={"max_results": 5}, auth=(username, password), timeout=30)
    assert found.status_code == 200
    assert "dove" in {e["name"] for e in found.json()["experiments"]}  # made by the stack


def test_airflow_refuses_requests_without_a_token_and_lists_the_dag_with_one(
    stack: dict[str, Any],
) -> None:
    airflow = stack["status"]["airflow"]
    assert httpx.get(f"{airflow['url']}/api/v2/dags", timeout=30).status_code == 401
    username, password = account(airflow["credentials"])
    bad = httpx.post(
        f"{airflow['url']}/auth/token", json={"username": username, "password": "x"}, timeout=30
    )
    assert bad.status_code == 401
    token = httpx.post(
        f"{airflow['url']}/auth/token",
        json={"username": username, "password": password},
        timeout=30,
    ).json()["access_token"]
    dags = httpx.get(
        f"{airflow['url']}/api/v2/dags",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()["dags"]
    paused = {d["dag_id"]: d["is_paused"] for d in dags}
    assert paused == {"dove_feedback_signal": True, "dove_retraining": True}  # --keep-paused


def test_nothing_of_the_stack_listens_beyond_loopback(stack: dict[str, Any]) -> None:
    status = stack["status"]
    pids = stack_pids(status)
    sockets = listening(pids)
    assert sockets, "the stack's processes listen on nothing?"
    assert {address for _, address, _ in sockets} == {"127.0.0.1"}, sockets
    ports = {port for _, _, port in sockets}
    for name in ("postgres", "mlflow", "airflow"):
        assert int(status[name]["url"].rsplit(":", 1)[1]) in ports, name


def test_a_second_up_reuses_ports_credentials_and_processes(stack: dict[str, Any]) -> None:
    cli: StackCli = stack["cli"]
    before = stack["status"]
    credentials = {p.name: p.read_bytes() for p in (cli.state_dir / "credentials").iterdir()}
    # no port options: the remembered ones; still paused (an unpause starts the weekly run,
    # a retraining in the background of the checks below)
    out = cli.check("up", "--keep-paused")
    after = cli.status()
    for name in SERVICES:
        assert after[name]["url"] == before[name]["url"], name
    for name in ("postgres", "mlflow", "airflow"):
        assert after[name]["healthy"] is True, name
    assert after["postgres"]["pid"] == before["postgres"]["pid"]
    assert after["mlflow"]["pid"] == before["mlflow"]["pid"]
    assert after["airflow"]["pids"] == before["airflow"]["pids"]
    assert out.count("already running") == 3, out
    again = {p.name: p.read_bytes() for p in (cli.state_dir / "credentials").iterdir()}
    assert again == credentials


def test_down_stops_every_process_of_the_stack(stack: dict[str, Any]) -> None:
    cli: StackCli = stack["cli"]
    pids = stack_pids(cli.status())
    assert len(pids) > 5  # servers, workers, PostgreSQL backends
    out = cli.check("down", timeout=300)
    assert "stack stopped" in out
    assert running(pids) == set()
    status = cli.status()
    assert not any(status[name]["healthy"] for name in SERVICES), status
    assert "nothing was running" in cli.check("down")  # a second down is fine
