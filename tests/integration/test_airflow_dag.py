"""The retraining DAG: parses cleanly in a real DagBag, and runs end to end with dag.test().

Airflow runs in a subprocess with its own AIRFLOW_HOME (sqlite metadata, migrated with
`airflow db migrate`) so its configuration never leaks into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
AIRFLOW = str(Path(PYTHON).with_name("airflow"))

pytestmark = pytest.mark.integration

PARSE_SCRIPT = """
import json, time
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=DAGS_FOLDER)
dag = bag.dags["dove_retraining"]
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "tasks": sorted(t.task_id for t in dag.tasks),
    "retries": sorted({t.retries for t in dag.tasks}),
    "backoff": all(t.retry_exponential_backoff for t in dag.tasks),
    "schedule": type(dag.timetable).__name__,
    "timetable": repr(dag.timetable),
}))
"""


def airflow_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    return env


def test_dag_folder_imports_without_errors(tmp_path: Path) -> None:
    script = f"DAGS_FOLDER = {str(REPO_ROOT / 'dags')!r}\n" + PARSE_SCRIPT
    done = subprocess.run(
        [PYTHON, "-c", script],
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == ["dove_retraining"]
    assert report["tasks"] == [
        "detect_data_version",
        "gate_passed",
        "promote",
        "roll_service",
        "run_pipeline",
    ]
    assert report["retries"] == [2] and report["backoff"]
    assert report["schedule"] == "AssetOrTimeSchedule"
    assert "dove-data-version" in report["timetable"] and "0 3 * * 1" in report["timetable"]


def test_parsing_the_dag_imports_no_heavy_library(tmp_path: Path) -> None:
    script = (
        f"import sys; sys.path.insert(0, {str(REPO_ROOT / 'dags')!r}); import dove_retraining; "
        "heavy = [m for m in ('torch', 'mlflow', 'kfp', 'bentoml', 'dove_model') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run(
        [PYTHON, "-c", script],
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
