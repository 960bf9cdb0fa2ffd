"""The retraining DAG's `ingest_archive` task (issue 28) under Airflow's own `dag.test()` (a
real sqlite Airflow in a subprocess, the task alone): success with nothing to do while
params.yaml sets no `archive.source`; with one, the scenes are cut into chips and the geo gate
passes. A failed gate fails the task's function (GateFailed), naming the expectation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dove_model.errors import GateFailed
from dove_model.geo.outputs import read_chips
from dove_model.pipeline.archive import ingest_archive
from dove_model.testing import orchestrators
from dove_model.testing.geo_deployment import set_archive, two_scenes
from dove_model.testing.smoke import write_smoke_project

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS = REPO_ROOT / "dags"
TASK = ("ingest_archive",)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    orchestrators.migrate_airflow(home, DAGS)
    return home


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("airflow-archive")
    write_smoke_project(root)
    two_scenes(root / "scenes")
    return root


def test_without_a_source_the_task_succeeds_doing_nothing(
    airflow_home: Path, project: Path
) -> None:
    result = orchestrators.dag_test(airflow_home, DAGS, project, only=TASK)
    assert result["state"] == "success" and result["tasks"] == {"ingest_archive": "success"}
    assert result["xcoms"]["ingest_archive"]["path"] == "none"
    assert not (project / "artifacts/chips").exists()


def test_with_a_source_the_task_ingests_and_gates(airflow_home: Path, project: Path) -> None:
    set_archive(project, source="scenes", ingest={"chip_size": 32, "workers": 1})
    result = orchestrators.dag_test(airflow_home, DAGS, project, only=TASK)
    assert result["state"] == "success", result["output"][-3000:]
    xcom = result["xcoms"]["ingest_archive"]
    assert (xcom["path"], xcom["scenes"], xcom["chips"]) == ("ingested", "2", "32")
    assert len(read_chips(project / "artifacts/chips")) == 32
    assert json.loads((project / "reports/archive/summary.json").read_text())["passed"]


def test_a_failed_geo_gate_fails_the_task(project: Path) -> None:
    set_archive(project, source="scenes", checks={"max_chips_per_scene": 8})
    with pytest.raises(GateFailed, match="geo gate failed: chips_per_scene_within_bounds"):
        ingest_archive(str(project), "params.yaml")
