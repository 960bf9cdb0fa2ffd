"""`dove stack up --runtime containers` for real: PostgreSQL in a container of the PostgreSQL
image, MLflow, Airflow's api-server, scheduler and dag-processor and then the service each in
a container of the pipeline image (both rebuilt from the checkout by ``up``), on the host's
network. One stack for the module, on a smoke project with the repository's DAGs, on free
ports, its state in a folder only root can enter (no host user needs to reach it): up, a
second up that reuses the containers, the retraining DAG run inside the scheduler's
container, an up that serves its @champion from a container (its searches logged in the
stack's PostgreSQL), and a down that leaves no container. Skipped where no container
engine runs containers (processes are test_stack.py's)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dove_model.testing.stack import StackCli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONTAINED = ("postgres", "mlflow", "airflow-api-server", "airflow-scheduler")
CONTAINED += ("airflow-dag-processor",)


def engine_or_skip() -> Any:
    from infra.stack.containers import find_runner

    engine = find_runner("containers")
    if engine is None:
        pytest.skip("no container engine runs containers here (docker's daemon or podman)")
    return engine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`dove stack up --runtime containers --keep-paused` once (test_c unpauses the DAG)."""
    from dove_model.testing.smoke import write_smoke_project

    engine = engine_or_skip()
    project = tmp_path_factory.mktemp("stack-containers-project")
    write_smoke_project(project)
    shutil.copytree(REPO / "dags", project / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    private = tmp_path_factory.mktemp("stack-containers-state")
    private.chmod(0o700)
    cli = StackCli(project, private / "state")
    found: dict[str, Any] = {"cli": cli, "engine": engine}
    try:
        found["started"] = time.monotonic()
        found["out"], found["seconds"] = cli.up("--runtime", "containers", "--keep-paused")
        print(f"dove stack up --runtime containers: {found['seconds']:.1f} s\n{found['out']}")
        found["status"] = cli.status()
        yield found
    finally:
        cli.remove()


def running_containers(engine: Any) -> dict[str, str]:
    """The stack containers the engine knows (any state), name -> id."""
    done = engine.run("ps", "--all", "--format", "{{.Names}} {{.ID}}")
    pairs = (line.split() for line in done.stdout.splitlines() if line.strip())
    return {name: cid for name, cid in pairs if name.startswith("dove-stack-")}


def test_a_up_runs_mlflow_and_airflow_in_containers_healthy(stack: dict[str, Any]) -> None:
    status = stack["status"]
    assert status["runtime"] == "containers"
    assert sorted(status["containers"]) == sorted(CONTAINED)
    for name in ("postgres", "mlflow", "airflow"):
        assert status[name]["healthy"], (name, status[name])
    assert status["airflow"]["components"]["scheduler"] == "healthy"
    assert status["service"]["deployed"] is False  # no champion yet
    live = running_containers(stack["engine"])
    assert set(status["containers"].values()) <= set(live)
    assert "containers" in stack["out"]
    assert "started in a container" in " ".join(stack["out"].split())


def test_a2_postgres_runs_from_its_image_as_a_non_root_user(stack: dict[str, Any]) -> None:
    from infra.images.build import POSTGRES_IMAGE

    engine, name = stack["engine"], stack["status"]["containers"]["postgres"]
    found = engine.run("inspect", "--format", "{{.ImageName}} {{.Config.User}}", name)
    image, user = found.stdout.split()
    assert image == POSTGRES_IMAGE and not user.startswith("0:")
    assert (stack["cli"].state_dir / "postgres" / "data").stat().st_uid == int(user.split(":")[0])


def test_b_a_second_up_reuses_the_running_containers(stack: dict[str, Any]) -> None:
    before = running_containers(stack["engine"])
    out = " ".join(stack["cli"].check("up", "--runtime", "auto", "--keep-paused").split())
    assert "mlflow already running" in out and "airflow already running" in out, out
    after = running_containers(stack["engine"])
    ours = set(stack["status"]["containers"].values())
    assert {n: before[n] for n in ours} == {n: after[n] for n in ours}
    refused = stack["cli"].run("up", "--runtime", "processes", "--keep-paused")
    assert refused.returncode != 0 and "stack down" in refused.stderr


def first_run(client: Any, project: Path) -> str:
    """Unpause the DAG: the weekly slot it starts (or a manual run when there is none)."""
    from infra.stack.config import DAG_ID

    client.set_paused(DAG_ID, False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        scheduled = client.runs(DAG_ID, run_type="scheduled")
        if scheduled:
            return str(scheduled[0]["dag_run_id"])
        time.sleep(3)
    return client.trigger(DAG_ID, {"project_root": str(project), "params_file": "params.yaml"})


def test_c_the_dag_runs_in_the_scheduler_container_and_up_serves_its_champion(
    stack: dict[str, Any],
) -> None:
    from infra.stack.config import DAG_ID, Layout
    from infra.stack.trigger import client_for

    cli = stack["cli"]
    client = client_for(Layout(cli.state_dir))
    run_id = first_run(client, cli.project)
    run = client.wait_for_run(DAG_ID, run_id, timeout=3000)
    assert run["state"] == "success", client.task_states(DAG_ID, run_id)
    out = " ".join(cli.check("up").split())
    assert "started, serving @champion v1" in out, out
    print(f"up -> champion served in containers: {time.monotonic() - stack['started']:.1f} s")
    status = cli.status()
    assert status["containers"]["service"] in running_containers(stack["engine"])
    assert status["service"]["healthy"] and status["service"]["serving"]["model_version"] == "1"
    hits = httpx.post(
        f"{status['service']['url']}/search_images",
        json={"query": "a river crosses the fields", "k": 5},
        timeout=60,
    )
    assert hits.status_code == 200, hits.text
    assert logged_query(status, hits.json()["query_id"]) == "a river crosses the fields"


def logged_query(status: dict[str, Any], query_id: str, timeout: float = 30.0) -> str | None:
    """The query's text in the stack's query log (PostgreSQL, database querylog), once the
    service's writer has written it (it batches for feedback.query_log.linger_s)."""
    import json

    import psycopg2

    account = json.loads(Path(status["postgres"]["databases"]["querylog"]).read_text())
    port = int(status["postgres"]["url"].rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout
    while True:
        connection = psycopg2.connect(
            host="127.0.0.1", port=port, dbname="querylog", user=account["username"],
            password=account["password"], connect_timeout=10,
        )  # fmt: skip
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass('dove_query_log')")
                found = None
                if cursor.fetchone()[0] is not None:
                    cursor.execute(
                        "SELECT text FROM dove_query_log WHERE query_id = %s", (query_id,)
                    )
                    found = cursor.fetchone()
        finally:
            connection.close()
        if found is not None or time.monotonic() > deadline:
            return found[0] if found else None
        time.sleep(1)


def test_d_down_leaves_no_container(stack: dict[str, Any]) -> None:
    cli = stack["cli"]
    ours = set(cli.status()["containers"].values())
    assert ours
    out = cli.check("down", timeout=600)
    assert "stack stopped" in out
    assert not ours & set(running_containers(stack["engine"]))
    status = cli.status()
    assert status["containers"] == {} and status["runtime"] is None
    assert not any(status[name]["healthy"] for name in ("postgres", "mlflow", "airflow"))
    assert "nothing was running" in cli.check("down")
