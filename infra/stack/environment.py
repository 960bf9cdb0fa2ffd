"""The environment every process of the stack starts with.

Built from the caller's environment at ``up`` time (never at import): the settings the stack
owns (MLflow, Airflow, BentoML, libpq) are removed first, so a variable left in the user's
shell cannot point a service elsewhere; the venv's ``bin`` comes first on PATH; telemetry
is off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

OWNED_PREFIXES = ("MLFLOW_", "AIRFLOW__", "BENTOML_", "PG")
# the service's settings (dove_model/serving/settings.py) come from the stack alone
OWNED_NAMES = (
    "AIRFLOW_HOME",
    "AIRFLOW_CONFIG",
    "DOVE_PARAMS",
    "DOVE_MODEL_TAG",
    "DOVE_MODEL_DIR",
    "DOVE_INDEX_DIR",
    "DOVE_API_KEY",
    "DOVE_QUERYLOG_STORE",
    "DOVE_QUERYLOG_DSN",
    "DOVE_QUERYLOG_DIR",
)
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}


def venv_bin() -> Path:
    """The folder of this interpreter's console scripts (mlflow, airflow, dove, bentoml)."""
    return Path(sys.executable).parent


def base_env(source: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        name: value
        for name, value in (os.environ if source is None else source).items()
        if not name.startswith(OWNED_PREFIXES) and name not in OWNED_NAMES
    }
    env["PATH"] = os.pathsep.join([str(venv_bin()), env.get("PATH", os.defpath)])
    return env | TELEMETRY_OFF


def query_log_env(pg_port: int, pgpass: Path) -> dict[str, str]:
    """The query log in the stack's PostgreSQL (database ``querylog``): for the service, which
    writes it, and for Airflow's tasks, which read it (the feedback DAG). The DSN holds no
    password: libpq reads it from ``PGPASSFILE``."""
    return {
        "DOVE_QUERYLOG_STORE": "postgres",
        "DOVE_QUERYLOG_DSN": f"postgresql://querylog@127.0.0.1:{pg_port}/querylog",
        "PGPASSFILE": str(pgpass),
    }


def mlflow_client_env(url: str, username: str, password: str) -> dict[str, str]:
    """What an MLflow client (a task, ``dove deploy``) needs to reach the stack's MLflow."""
    return {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": username,
        "MLFLOW_TRACKING_PASSWORD": password,
    }
