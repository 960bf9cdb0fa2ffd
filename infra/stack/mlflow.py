"""``mlflow server`` on the stack's PostgreSQL, artifacts proxied into the state folder,
behind MLflow's basic-auth app (a request without valid credentials gets 401).

The backend store and the user store URIs name no password: libpq reads it from the
stack's password file (``PGPASSFILE``). The admin account is created by the server on its
first start; ``infra/k8s/base/mlflow/create_users.py``, the cluster's account Job, then
creates the pipeline account (Airflow's tasks) and the reader (the service's deploy).
"""

from __future__ import annotations

import configparser
import io
import subprocess
import sys
from pathlib import Path

import httpx

from infra.stack.config import LOOPBACK, Layout, StackError
from infra.stack.credentials import Account, write_private
from infra.stack.environment import venv_bin
from infra.stack.processes import open_log


def db_uri(port: int, database: str) -> str:
    """``postgresql+psycopg2://<role>@127.0.0.1:<port>/<database>``: no password in it."""
    return f"postgresql+psycopg2://{database}@{LOOPBACK}:{port}/{database}"


def backend_uri(pg_port: int) -> str:
    return db_uri(pg_port, "mlflow")


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def write_auth_ini(layout: Layout, pg_port: int) -> Path:
    """The basic-auth app's settings: the user store in its own database, READ for all."""
    ini = configparser.ConfigParser()
    ini["mlflow"] = {
        "default_permission": "READ",
        "database_uri": db_uri(pg_port, "mlflow_auth"),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access": "false",
    }
    text = io.StringIO()
    ini.write(text)
    layout.mlflow.mkdir(parents=True, exist_ok=True)
    write_private(layout.mlflow_auth_ini, text.getvalue())
    return layout.mlflow_auth_ini


def command(port: int, pg_port: int, layout: Layout, workers: int) -> list[str]:
    layout.artifacts.mkdir(parents=True, exist_ok=True)
    return [
        str(venv_bin() / "mlflow"), "server",
        "--app-name", "basic-auth",
        "--host", LOOPBACK,
        "--port", str(port),
        "--backend-store-uri", backend_uri(pg_port),
        "--artifacts-destination", str(layout.artifacts),
        "--serve-artifacts",
        "--workers", str(workers),
    ]  # fmt: skip


def server_env(layout: Layout, admin: Account, flask_key: str) -> dict[str, str]:
    return {
        "PGPASSFILE": str(layout.pgpass),
        "MLFLOW_AUTH_CONFIG_PATH": str(layout.mlflow_auth_ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": admin.username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin.password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_key,
        # the GenAI job runner (eight huey consumer processes): nothing here uses it
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def is_healthy(port: int) -> bool:
    try:
        return httpx.get(f"{url(port)}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_accounts(
    port: int,
    accounts: dict[str, Account],
    model_name: str,
    experiment: str,
    env: dict[str, str],
    log: Path,
) -> None:
    """Run the cluster's account script against this server (idempotent)."""
    admin, pipeline, reader = (accounts[k] for k in ("mlflow", "mlflow-pipeline", "mlflow-reader"))
    job_env = env | {
        "MLFLOW_TRACKING_URI": url(port),
        "MLFLOW_TRACKING_USERNAME": admin.username,
        "MLFLOW_TRACKING_PASSWORD": admin.password,
        "DOVE_PIPELINE_USERNAME": pipeline.username,
        "DOVE_PIPELINE_PASSWORD": pipeline.password,
        "DOVE_READER_USERNAME": reader.username,
        "DOVE_READER_PASSWORD": reader.password,
        "DOVE_MODEL_NAME": model_name,
        "DOVE_EXPERIMENT": experiment,
        "DOVE_WAIT_SECONDS": "60",
    }
    script = [sys.executable, "-m", "infra.k8s.base.mlflow.create_users"]
    with open_log(log) as out:
        done = subprocess.run(
            script, env=job_env, stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False
        )
    if done.returncode != 0:
        raise StackError(f"creating the MLflow accounts failed: read {log}")


def champion_version(port: int, reader: Account, model_name: str) -> str | None:
    """The version ``@champion`` points at (None: no champion, or no model yet)."""
    response = httpx.get(
        f"{url(port)}/api/2.0/mlflow/registered-models/alias",
        params={"name": model_name, "alias": "champion"},
        auth=(reader.username, reader.password),
        timeout=10,
    )
    missing = response.status_code == 404 or (
        response.status_code == 400 and "not found" in response.text  # no such alias
    )
    if missing:
        return None
    if response.status_code != 200:
        raise StackError(f"MLflow answered {response.status_code} for @champion: {response.text}")
    return str(response.json()["model_version"]["version"])
