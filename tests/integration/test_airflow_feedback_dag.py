"""Retraining on signal: the ``dove_feedback_signal`` DAG under Airflow's own ``dag.test()``
(a private AIRFLOW_HOME, sqlite metadata) on a smoke project with a query log. Too little
feedback: nothing is exported and no data asset event is posted. Enough new relevant
feedback: a new data version is exported through the GE gates and the event on
``dove-data-version`` (the asset dove_retraining is scheduled on) is posted."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from dove_model.testing import orchestrators

pytestmark = pytest.mark.integration
DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "dove_feedback_signal"
SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent
from airflow.utils.session import create_session
dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[3]]
run = dag.test(run_conf={"project_root": sys.argv[2], "params_file": "params.yaml"})
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
with create_session() as session:
    events = [e.asset.name for e in session.query(AssetEvent).all()]
print("RESULT " + json.dumps({"state": str(run.state), "tasks": states, "events": events}))
"""


def dag_test(home: Path, project: Path) -> dict:
    env = orchestrators.airflow_env(home, DAGS, project)
    done = orchestrators.run_tool(
        project, sys.executable, "-c", SCRIPT, str(DAGS), str(project), DAG_ID, env=env
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


def mark(project: Path, n: int, start: int) -> None:
    """``n`` searches, each with its train image marked relevant, in the project's log."""
    from dove_model.config import load_params
    from dove_model.data.manifest import read_manifest
    from dove_model.data.prepare import prepare
    from dove_model.feedback.files import FileStore
    from dove_model.feedback.records import FeedbackRecord, QueryRecord

    params = load_params(project / "params.yaml")
    with contextlib.chdir(project):
        manifest = read_manifest(prepare(params, progress=False))
    train = manifest[manifest["split"] == "train"].drop_duplicates("image_id")
    store = FileStore(project / params.feedback.query_log.dir, params.feedback.query_log)
    words = ["green", "red", "white", "small", "large", "dense", "many", "few", "old", "new"]
    for i in range(start, start + n):
        image_id = str(train["image_id"].iloc[i % len(train)])
        text = f"{words[i % 10]} {words[(i // 10) % 10]} buildings beside a road"
        search = QueryRecord.of_search(
            text, 5, [(image_id, 0.8)], ("1", None), 1.0, "text", f"c{i % 4}"
        )
        relevant = i % 5 != 0
        store.write(
            [search, FeedbackRecord(search.query_id, image_id, relevant, 1, client=search.client)]
        )
    store.close()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from dove_model.testing.smoke import write_smoke_project

    home = tmp_path_factory.mktemp("airflow-home")
    project = tmp_path_factory.mktemp("feedback-project")
    params_file = write_smoke_project(project)
    raw = yaml.safe_load(params_file.read_text())
    raw["feedback"] = {"retrain_min_new_pairs": 12, "export": {"expectations": {"min_pairs": 5}}}
    params_file.write_text(yaml.safe_dump(raw))
    orchestrators.migrate_airflow(home, DAGS)
    return home, project


def test_too_little_feedback_posts_no_event(airflow: tuple[Path, Path]) -> None:
    home, project = airflow
    mark(project, 5, start=0)  # 4 relevant: below retrain_min_new_pairs
    result = dag_test(home, project)
    assert result["tasks"]["export_on_signal"] == "success"
    assert result["tasks"]["post_data_event"] == "skipped"
    assert result["events"] == []
    assert not (project / "data" / "feedback" / "pairs.parquet").exists()


def test_enough_new_feedback_exports_a_data_version_and_posts_the_event(
    airflow: tuple[Path, Path],
) -> None:
    import pandas as pd

    home, project = airflow
    mark(project, 15, start=5)  # 16 relevant in all now
    result = dag_test(home, project)
    assert result["state"] == "success", result
    assert result["tasks"]["post_data_event"] == "success"
    assert result["events"] == ["dove-data-version"]
    pairs = pd.read_parquet(project / "data" / "feedback" / "pairs.parquet")
    assert int(pairs["relevant"].sum()) == 16
