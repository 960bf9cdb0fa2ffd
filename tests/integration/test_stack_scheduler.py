"""Airflow schedules for real on `dove stack`: the retraining DAG runs under the stack's
scheduler (LocalExecutor: every task in its own process), logs and registers in the stack's
MLflow (PostgreSQL, basic auth) and rolls out the service, which then answers a search.

The project is the smoke project (48 synthetic 64 px images, one epoch) in a git + DVC
repository with the repository's `dags/`, so a run without conf (the weekly slot, an asset
event) retrains this project too. Unpausing the DAG starts its latest weekly slot at once
(catchup=False); runs are one at a time (max_active_runs=1).

1. a run triggered through the REST API (`POST /api/v2/dags/dove_retraining/dagRuns`,
   `logical_date: null`, conf project_root/params_file) ends in success with v1 registered
   and promoted; `dove stack up` then starts the service, which answers a text search;
2. a data change (`dove data version` after the synthetic set grows to 52 images) and
   `dove stack trigger --asset-event` (`POST /api/v2/assets/events` on the DAG's asset) make
   the scheduler run it again: v2 is registered for the new data version, and
   `dove stack up` restarts the service on the new champion.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dove_model.testing import orchestrators
from dove_model.testing.stack import StackCli, reachable_state_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "dove_retraining"
MODEL = "dove-rs-retrieval"
RUN_TIMEOUT = 1500.0


def account(path: str) -> tuple[str, str]:
    raw = json.loads(Path(path).read_text())
    return raw["username"], raw["password"]


def data_md5(project: Path) -> str:
    return str(yaml.safe_load((project / "data.dvc").read_text())["outs"][0]["md5"])


def smoke_repository(project: Path) -> None:
    """The smoke project with the DAGs, its data rendered and versioned by DVC."""
    from dove_model.testing.smoke import write_smoke_project

    write_smoke_project(project)
    shutil.copytree(REPO / "dags", project / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    orchestrators.commit_all(project, "smoke project", init=True)
    orchestrators.dvc(project, "init", "-q")
    orchestrators.check_tool(
        project, str(orchestrators.BIN / "dove"), "data", "version", "--no-push"
    )
    orchestrators.commit_all(project, "data version")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from infra.stack.airflow_api import AirflowClient
    from infra.stack.config import StackError
    from infra.stack.postgres import find_bindir

    try:
        find_bindir()
    except StackError as exc:
        pytest.skip(str(exc))
    project = tmp_path_factory.mktemp("stack-scheduler") / "project"
    project.mkdir()
    smoke_repository(project)
    cli = StackCli(project, reachable_state_dir())
    try:
        out, seconds = cli.up()  # unpauses the DAG
        print(f"dove stack up: {seconds:.1f} s\n{out}")
        status = cli.status()
        client = AirflowClient(status["airflow"]["url"], *account(status["airflow"]["credentials"]))
        yield {"cli": cli, "project": project, "status": status, "client": client}
    finally:
        cli.remove()


def champion(status: dict[str, Any]) -> dict[str, Any]:
    """``@champion`` as the stack's MLflow answers it (the admin account), tags as a dict."""
    response = httpx.get(
        f"{status['mlflow']['url']}/api/2.0/mlflow/registered-models/alias",
        params={"name": MODEL, "alias": "champion"},
        auth=account(status["mlflow"]["credentials"]),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    version = response.json()["model_version"]
    return version | {"tags": {t["key"]: t["value"] for t in version.get("tags", [])}}


def xcom(client: Any, run_id: str, task_id: str) -> Any:
    path = f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return client.request("GET", path)["value"]


def assert_run_succeeded(client: Any, run_id: str, status: dict[str, Any]) -> None:
    """Success, every task too, each task in its own process (none of Airflow's servers)."""
    run = client.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    states = client.task_states(DAG_ID, run_id)
    assert run["state"] == "success", states
    assert set(states.values()) == {"success"}, states
    found = client.request("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    pids = [ti["pid"] for ti in found["task_instances"]]
    assert all(pids) and len(set(pids)) == len(pids), pids
    assert not set(pids) & set(status["airflow"]["pids"].values())


def search(url: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{url}/search_images", json={"query": "a river crosses the fields", "k": 5}, timeout=60
    )
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def test_a_run_triggered_through_the_rest_api_trains_registers_and_is_served(
    stack: dict[str, Any],
) -> None:
    client, project, status = stack["client"], stack["project"], stack["status"]
    conf = {"project_root": str(project), "params_file": "params.yaml"}
    run_id = client.trigger(DAG_ID, conf)
    assert client.run(DAG_ID, run_id)["run_type"] == "manual"
    assert_run_succeeded(client, run_id, status)
    # unpausing started the latest weekly slot first (max_active_runs=1) and trained v1,
    # unless the clock is before the DAG's start date
    scheduled = client.runs(DAG_ID, run_type="scheduled")
    assert len(scheduled) <= 1 and all(r["state"] == "success" for r in scheduled)
    result = xcom(client, run_id, "run_pipeline")
    assert result == {"data_version": data_md5(project), "model_version": "1", "gate": "passed"}
    version = champion(status)
    assert version["version"] == "1"
    assert version["tags"]["pipeline_data_version"] == data_md5(project)

    out = stack["cli"].check("up")
    assert "serving @champion v1" in out
    served = stack["cli"].status()["service"]
    assert served["healthy"] is True and served["url"].startswith("http://127.0.0.1:")
    assert len(search(served["url"])) == 5


def test_a_data_change_and_an_asset_event_make_the_scheduler_retrain(
    stack: dict[str, Any],
) -> None:
    client, project, cli = stack["client"], stack["project"], stack["cli"]
    before = data_md5(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["synth"]["n_images"] = 52
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dove = str(orchestrators.BIN / "dove")
    assert "data version" in orchestrators.check_tool(project, dove, "data", "version", "--no-push")
    orchestrators.commit_all(project, "52 images")
    assert data_md5(project) != before

    # `dove stack trigger --asset-event`: POST /api/v2/assets/events, then the new run
    done = cli.run("trigger", "--asset-event", "--wait", "--timeout", str(RUN_TIMEOUT))
    assert done.returncode == 0, done.stderr
    triggered = json.loads(done.stdout)
    run_id = triggered["dag_run_id"]
    assert triggered["state"] == "success", triggered
    assert client.run(DAG_ID, run_id)["run_type"] == "asset_triggered"
    assert_run_succeeded(client, run_id, stack["status"])
    events = client.request("GET", "assets/events")["asset_events"]
    assert [e["name"] for e in events] == ["dove-data-version"]
    assert [r["run_id"] for r in events[0]["created_dagruns"]] == [run_id]
    result = xcom(client, run_id, "run_pipeline")
    assert result["data_version"] == data_md5(project) and result["model_version"] == "2"

    assert champion(cli.status())["version"] == "2"  # the smoke gates pass: promoted
    out = cli.check("up")  # the service still serves v1: up restarts it on v2
    assert "v1 stopped (@champion is now v2)" in out and "serving @champion v2" in out
    served = cli.status()["service"]
    assert served["healthy"] is True
    info = httpx.post(f"{served['url']}/info", json={}, timeout=30).json()
    assert (info["model_version"], info["n_images"]) == ("2", 52)
    assert len(search(served["url"])) == 5
