"""Airflow 3 for real: metadata on the stack's PostgreSQL, ``api-server``, ``scheduler`` and
``dag-processor`` as processes, the LocalExecutor, the project's ``dags/``.

Settings live in ``<state>/airflow/airflow.cfg`` (mode 0600, rewritten on every ``up``), so
``AIRFLOW_HOME=<state>/airflow airflow ...`` talks to the same Airflow. What was measured on
a 2-core machine and is handled here:

- tasks reach the Execution API at ``core.execution_api_server_url``: it follows the chosen
  port (the default, localhost:8080, gets a task SIGKILLed after "Connection refused");
- the LocalExecutor starts ``core.parallelism`` worker processes: one per core, not 32;
- the task log server listens on every interface (its host is not configurable in 3.3):
  the scheduler runs with ``--skip-serve-logs`` (task logs are local files the API server
  reads), no triggerer runs (the DAG defers nothing), the health-check server stays off;
- the simple auth manager with one admin account from a passwords file (no open access).
"""

from __future__ import annotations

import configparser
import io
import json
import os
import subprocess
from pathlib import Path

import httpx

from infra.stack.config import LOOPBACK, Layout, StackError
from infra.stack.credentials import Account, write_private
from infra.stack.environment import venv_bin
from infra.stack.processes import open_log

COMPONENTS = ("api-server", "scheduler", "dag-processor")


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def settings(
    layout: Layout, port: int, pg_port: int, dags_folder: Path, keys: dict[str, str]
) -> dict[str, dict[str, str]]:
    """airflow.cfg, section by section."""
    home = layout.airflow_home
    return {
        "core": {
            "dags_folder": str(dags_folder),
            "executor": "LocalExecutor",
            "parallelism": str(cores()),
            "load_examples": "False",
            "dags_are_paused_at_creation": "True",
            "fernet_key": keys["airflow_fernet_key"],
            "execution_api_server_url": f"{url(port)}/execution/",
            "auth_manager": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "simple_auth_manager_users": "admin:admin",
            "simple_auth_manager_all_admins": "False",
            "simple_auth_manager_passwords_file": str(home / "passwords.json"),
        },
        "database": {
            "sql_alchemy_conn": f"postgresql+psycopg2://airflow@{LOOPBACK}:{pg_port}/airflow",
            # no async driver (asyncpg) in the locked environment: the async engine stays off
            # (only the run-waiting endpoint and multi-team mode use it, neither here)
            "sql_alchemy_conn_async": "",
        },
        "api": {
            "host": LOOPBACK,
            "port": str(port),
            "workers": "1",
            "base_url": url(port),
            "secret_key": keys["airflow_api_secret_key"],
            "expose_config": "False",
        },
        "api_auth": {"jwt_secret": keys["airflow_jwt_secret"]},
        "scheduler": {"enable_health_check": "False"},
        "dag_processor": {"parsing_processes": "1"},
        # task logs (and the DAG processor's) beside the processes' logs
        "logging": {"base_log_folder": str(layout.logs / "airflow-tasks")},
    }


def write_config(
    layout: Layout,
    port: int,
    pg_port: int,
    dags_folder: Path,
    keys: dict[str, str],
    admin: Account,
) -> None:
    """airflow.cfg and the simple auth manager's passwords file, both mode 0600."""
    home = layout.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_dict(settings(layout, port, pg_port, dags_folder, keys))
    text = io.StringIO()
    cfg.write(text)
    header = "# written by `dove stack up` on every start: edit the stack, not this file\n"
    write_private(home / "airflow.cfg", header + text.getvalue())
    write_private(home / "passwords.json", json.dumps({admin.username: admin.password}) + "\n")


def process_env(layout: Layout) -> dict[str, str]:
    """What every Airflow process needs beyond the base environment."""
    return {"AIRFLOW_HOME": str(layout.airflow_home), "PGPASSFILE": str(layout.pgpass)}


def migrate(env: dict[str, str], log: Path, cwd: Path) -> None:
    """``airflow db migrate`` (idempotent)."""
    with open_log(log) as out:
        done = subprocess.run(
            [str(venv_bin() / "airflow"), "db", "migrate"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise StackError(f"airflow db migrate failed (exit {done.returncode}): read {log}")


def command(component: str) -> list[str]:
    airflow = str(venv_bin() / "airflow")
    if component == "scheduler":
        return [airflow, "scheduler", "--skip-serve-logs"]
    return [airflow, component]


def health(port: int) -> dict[str, str | None]:
    """Each component's status from ``/api/v2/monitor/health`` (empty when unreachable)."""
    try:
        response = httpx.get(f"{url(port)}/api/v2/monitor/health", timeout=5)
        if response.status_code != 200:
            return {}
        return {name: part.get("status") for name, part in response.json().items() if part}
    except (httpx.HTTPError, ValueError):
        return {}


def is_healthy(port: int) -> bool:
    """The API server answers and reports the database, scheduler and DAG processor healthy."""
    found = health(port)
    return all(found.get(k) == "healthy" for k in ("metadatabase", "scheduler", "dag_processor"))
