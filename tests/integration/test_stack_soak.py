"""The lifecycle soak at smoke size: five data versions and events through the real scheduler
of one `dove stack` (PostgreSQL, MLflow with basic auth, Airflow 3 with LocalExecutor, the
BentoML service), each followed by a check of the whole state.

The project is the smoke project (48 synthetic 64 px images, one epoch; the service polls
its index every second) in a git + DVC repository with the repository's `dags/`, so a run
without conf (the weekly slot, an asset event) retrains this project. The steps, in order:

a. unpausing the DAG starts its latest weekly slot (catchup=False: the scheduler's own
   timetable): v1 is trained, registered and promoted, the index built with it; `dove stack
   up` then starts the service on it (the only start of the service in the module);
b. 52 images (`dove data version`) and `dove stack trigger --asset-event`: v2 is promoted
   and rolled out (full rebuild: `deploy` imports it into the store, a new index version
   names its tag); two clients keep searching all along and the running service swaps
   model and index without a restart (same process tree) and without one failed request;
c. 56 images and a gate floor no model reaches, triggered through the REST API while
   `data.dvc` is being rewritten (empty): `detect_data_version` fails, Airflow retries it
   after the DAG's retry delay (try 2 succeeds) and the run ends `success`, as the API
   shows; v3 is registered as challenger and not promoted, and the roll-out is an
   incremental update of the served index (same model, 4 more images, a new version);
d. `dove rollback` (v1 champion again) and `dove stack up`: `up` rolls @champion out (`dove
   deploy`: v1 into the store, a new index version naming it) and the running service
   serves v1 again, live, under load, without a restart;
e. `dove stack trigger --wait` (REST) with the data unchanged: the run registers nothing,
   runs no pipeline, writes no index version (`roll_service` says `unchanged`) and leaves
   the rollback alone; `dove stack up` leaves the service running.

After every step: the registry (aliases, version count, gate tags, no stale alias, no lease
left, every MLflow run FINISHED), the index root (CURRENT, the versions, n_images), the
service's `/info` (model version and fingerprint, index version, n_images) and its pid.
Each step prints one summary line (`soak <step>: ...`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dove_model.testing import orchestrators
from dove_model.testing.stack import SearchLoad, StackCli, process_tree, reachable_state_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "dove_retraining"
MODEL = "dove-rs-retrieval"
RUN_TIMEOUT = 900.0
INDEX = "artifacts/index"
RETRY_DELAY_S = 60.0  # dags/dove_retraining.py DEFAULT_ARGS: the first retry's least delay
GITIGNORE = "/artifacts/\n/local_outputs/\n/.cache/\n/mlruns/\n/bentoml_home/\n/reports/\n"


def account(path: str) -> tuple[str, str]:
    raw = json.loads(Path(path).read_text())
    return raw["username"], raw["password"]


@dataclass
class Soak:
    """The stack, its project and what the steps found so far."""

    cli: StackCli
    project: Path
    status: dict[str, Any]
    client: Any  # infra.stack.airflow_api.AirflowClient
    done: list[str] = field(default_factory=list)  # steps that passed
    summary: list[str] = field(default_factory=list)
    service_pids: set[int] = field(default_factory=set)
    first_fingerprint: str = ""
    index_versions: list[str] = field(default_factory=list)

    @property
    def mlflow(self) -> tuple[str, tuple[str, str]]:
        return self.status["mlflow"]["url"], account(self.status["mlflow"]["credentials"])

    def require(self, step: str) -> None:
        if step not in self.done:
            pytest.skip(f"step {step} did not pass")

    def report(self, step: str, started: float, line: str) -> None:
        self.summary.append(f"soak {step}: {time.monotonic() - started:.0f} s, {line}")
        print(self.summary[-1])
        self.done.append(step)


def smoke_repository(project: Path) -> None:
    """The smoke project (index polled every second) with the DAGs, its data versioned."""
    from dove_model.testing.smoke import write_smoke_project

    write_smoke_project(project, {"serve": {"index_poll_s": 1}})
    shutil.copytree(REPO / "dags", project / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".gitignore").write_text(GITIGNORE)
    orchestrators.commit_all(project, "smoke project", init=True)
    orchestrators.dvc(project, "init", "-q")
    dove(project, "data", "version", "--no-push")
    orchestrators.commit_all(project, "data version")


def dove(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    command = [str(orchestrators.BIN / "dove"), *args]
    done = orchestrators.run_tool(project, *command, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soak]:
    from infra.stack.airflow_api import AirflowClient
    from infra.stack.config import StackError
    from infra.stack.postgres import find_bindir

    try:
        find_bindir()
    except StackError as exc:
        pytest.skip(str(exc))
    project = tmp_path_factory.mktemp("stack-soak") / "project"
    project.mkdir()
    smoke_repository(project)
    cli = StackCli(project, reachable_state_dir())
    try:
        # unpauses the DAG: its latest weekly slot runs now (processes: test_stack_containers.py
        # runs the containers runtime)
        out, seconds = cli.up("--runtime", "processes")
        print(f"dove stack up: {seconds:.1f} s\n{out}")
        status = cli.status()
        client = AirflowClient(status["airflow"]["url"], *account(status["airflow"]["credentials"]))
        # up unpaused both DAGs; the soak is the retraining DAG's: the feedback DAG (hourly,
        # nothing to find here) is paused again so that it does not prepare data beside it
        assert "dove_feedback_signal unpaused" in " ".join(out.split()), out
        client.set_paused("dove_feedback_signal", True)
        state = Soak(cli, project, status, client)
        yield state
        print("\n".join(["", *state.summary]))
    finally:
        cli.remove()


# ------------------------------------------------------------------ reading the state
def mlflow_get(soak: Soak, path: str, **params: str) -> dict[str, Any]:
    url, auth = soak.mlflow
    response = httpx.get(f"{url}/api/2.0/mlflow/{path}", params=params, auth=auth, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def registry(soak: Soak) -> dict[str, Any]:
    """Aliases, versions (tags as dicts) and the status of every run of every experiment."""
    model = mlflow_get(soak, "registered-models/get", name=MODEL)["registered_model"]
    found = mlflow_get(soak, "model-versions/search", filter=f"name='{MODEL}'")
    versions = {
        v["version"]: {t["key"]: t["value"] for t in v.get("tags", [])}
        for v in found.get("model_versions", [])
    }
    url, auth = soak.mlflow
    experiments = httpx.post(
        f"{url}/api/2.0/mlflow/experiments/search", json={"max_results": 100}, auth=auth, timeout=30
    ).json()["experiments"]
    ids = [e["experiment_id"] for e in experiments]
    runs = httpx.post(
        f"{url}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": ids, "max_results": 1000},
        auth=auth,
        timeout=30,
    ).json()
    lease = httpx.get(
        f"{url}/api/2.0/mlflow/registered-models/get",
        params={"name": f"{MODEL}.registry-lease"},
        auth=auth,
        timeout=30,
    )
    return {
        "aliases": {a["alias"]: a["version"] for a in model.get("aliases", [])},
        "versions": versions,
        "runs": [r["info"]["status"] for r in runs.get("runs", [])],
        "lease_left": lease.status_code == 200,
    }


def index_state(soak: Soak) -> dict[str, Any]:
    root = soak.project / INDEX
    current = (root / "CURRENT").read_text().strip()
    meta = json.loads((root / "versions" / current / "meta.json").read_text())
    versions = sorted(p.name for p in (root / "versions").iterdir() if not p.name.startswith("."))
    return {"current": current, "versions": versions, "meta": meta}


def info(soak: Soak) -> dict[str, Any]:
    response = httpx.post(f"{soak.status['service']['url']}/info", json={}, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def xcom(soak: Soak, run_id: str, task_id: str) -> Any:
    path = f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    return soak.client.request("GET", path)["value"]


def task_instance(soak: Soak, run_id: str, task_id: str) -> dict[str, Any]:
    return soak.client.request("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")


def data_md5(soak: Soak) -> str:
    return str(yaml.safe_load((soak.project / "data.dvc").read_text())["outs"][0]["md5"])


# ------------------------------------------------------------------ checking the state
@dataclass(frozen=True)
class Expect:
    versions: int
    champion: str
    challenger: str
    previous: str | None
    n_images: int
    new_index: bool  # the step wrote a new index version


def check_aliases(found: dict[str, Any], expect: Expect) -> None:
    """Where each alias points, and that none is stale: every alias on an existing version,
    challenger on the newest registration, the champion a passed, not rolled-back version,
    previous-champion the version it was promoted over."""
    aliases, versions = found["aliases"], found["versions"]
    wanted = {"champion": expect.champion, "challenger": expect.challenger}
    assert aliases == wanted | ({"previous-champion": expect.previous} if expect.previous else {})
    assert sorted(versions, key=int) == [str(i) for i in range(1, expect.versions + 1)]
    assert set(aliases.values()) <= set(versions)
    assert aliases["challenger"] == max(versions, key=int)
    champion = versions[aliases["champion"]]
    assert champion["gate"] == "passed" and champion.get("rolled_back") != "true", champion
    over = champion.get("promoted_over")
    assert aliases.get("previous-champion") == (None if over in (None, "none") else over)
    # one MLflow run per registration, none left RUNNING; no registry lease left behind
    assert found["runs"] == ["FINISHED"] * expect.versions, found["runs"]
    assert not found["lease_left"]


def wait_served(soak: Soak, check: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not check(found := info(soak)):
        assert time.monotonic() < deadline, f"/info never changed as expected: {found}"
        time.sleep(0.5)
    return found


def check_state(soak: Soak, expect: Expect) -> dict[str, Any]:
    """Registry, index root and the service agree with ``expect`` and with one another."""
    found = registry(soak)
    check_aliases(found, expect)
    index = index_state(soak)
    before = soak.index_versions
    if expect.new_index:
        assert index["current"] not in before and index["current"] == index["versions"][-1]
    else:
        assert index["versions"] == before, (before, index["versions"])
    assert len(index["versions"]) <= 3  # index.keep_versions 2 beside the current one
    meta = index["meta"]
    assert (meta["n_images"], meta["model"]["model_version"]) == (
        expect.n_images,
        expect.champion,
    )
    served = wait_served(soak, lambda i: i["index_version"] == index["current"], 60)
    assert served["model_version"] == expect.champion and served["n_images"] == expect.n_images
    assert served["model_fingerprint"] == meta["model_fingerprint"]
    assert served["index_refused"] is None
    assert process_tree(soak.status["service"]["pid"]) == soak.service_pids  # no restart
    soak.index_versions = index["versions"]
    return {"registry": found, "index": index, "info": served}


def assert_run(soak: Soak, run_id: str, tasks: dict[str, str]) -> dict[str, Any]:
    """The run ended ``success`` with these task states, each task in its own process."""
    run = soak.client.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    states = soak.client.task_states(DAG_ID, run_id)
    assert run["state"] == "success" and states == tasks, (run["state"], states)
    found = soak.client.request("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    pids = [ti["pid"] for ti in found["task_instances"] if ti["state"] == "success"]
    assert all(pids) and len(set(pids)) == len(pids), pids
    assert not set(pids) & set(soak.status["airflow"]["pids"].values())
    return run


ALL_RAN = dict.fromkeys(
    (
        "ingest_archive",  # beside the retraining: no archive source here, so it does nothing
        "detect_data_version",
        "run_pipeline",
        "gate_passed",
        "promote",
        "roll_service",
    ),
    "success",
)
NOT_PROMOTED = ALL_RAN | {"promote": "skipped"}


def set_data(soak: Soak, n_images: int, gate_floor: float | None = None) -> str:
    """A new data version (`dove data version` of the grown synthetic set), committed."""
    path = soak.project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"]["synth"]["n_images"] = n_images
    if gate_floor is not None:
        params["register"]["gates"]["min_metrics"] = {"mR": gate_floor}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    before = data_md5(soak)
    assert "data version" in dove(soak.project, "data", "version", "--no-push")
    orchestrators.commit_all(soak.project, f"{n_images} images")
    assert data_md5(soak) != before
    return data_md5(soak)


def wait_for_model(soak: Soak, run_id: str, version: str) -> float:
    """When ``/info`` first named model ``version`` (the run still going or just done)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    finished_at = None
    while info(soak)["model_version"] != version:
        state = soak.client.run(DAG_ID, run_id)["state"]
        assert state != "failed", soak.client.task_states(DAG_ID, run_id)
        if state == "success":
            finished_at = finished_at or time.monotonic()
            assert time.monotonic() - finished_at < 60, "the run ended, the model never swapped"
        assert time.monotonic() < deadline, f"run {run_id} still {state}"
        time.sleep(0.5)
    return time.monotonic()


def load_line(load: SearchLoad, swapped: float) -> str:
    failed = load.failed()
    assert not failed, f"{len(failed)} failed requests of {len(load.answers)}: {failed[:5]}"
    assert len(load.answers) > 50 and load.around(swapped, 5) > 10, len(load.answers)
    near = load.around(swapped, 5)
    return f"{len(load.answers)} searches, 0 failed ({near} within 5 s of the swap)"


def assert_created_by_an_event(soak: Soak, run_id: str) -> None:
    """An asset-triggered run that one event on the DAG's asset created."""
    assert soak.client.run(DAG_ID, run_id)["run_type"] == "asset_triggered"
    events = soak.client.request("GET", "assets/events", params={"limit": "100"})
    created = [
        [r["run_id"] for r in e["created_dagruns"]]
        for e in events["asset_events"]
        if e["name"] == "dove-data-version"
    ]
    assert [run_id] in created, created


def first_run(soak: Soak) -> tuple[str, str]:
    """The weekly slot that unpausing started (or, with a clock before the DAG's start date,
    a run triggered through the REST API): its id and type."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        scheduled = soak.client.runs(DAG_ID, run_type="scheduled")
        if scheduled:
            return str(scheduled[0]["dag_run_id"]), "scheduled"
        time.sleep(3)
    conf = {"project_root": str(soak.project), "params_file": "params.yaml"}
    return soak.client.trigger(DAG_ID, conf), "manual"


# ------------------------------------------------------------------ the steps
def test_a_the_first_run_trains_v1_and_up_starts_the_service_on_it(soak: Soak) -> None:
    started = time.monotonic()
    run_id, run_type = first_run(soak)
    assert_run(soak, run_id, ALL_RAN)
    assert xcom(soak, run_id, "run_pipeline") == {
        "data_version": data_md5(soak),
        "model_version": "1",
        "gate": "passed",
    }
    assert xcom(soak, run_id, "roll_service")["path"] == "full"

    out = " ".join(soak.cli.check("up").split())
    assert "started, serving @champion v1" in out, out
    soak.status = soak.cli.status()
    pid = soak.status["service"]["pid"]
    soak.service_pids = process_tree(pid)
    state = check_state(soak, Expect(1, "1", "1", None, 48, new_index=True))
    soak.first_fingerprint = state["info"]["model_fingerprint"]
    hits = httpx.post(
        f"{soak.status['service']['url']}/search_images",
        json={"query": "a river crosses the fields", "k": 5},
        timeout=60,
    )
    assert hits.status_code == 200 and len(hits.json()["results"]) == 5
    soak.report(
        "a",
        started,
        f"{run_type} run: v1 registered and promoted, full build, index {state['index']['current']}"
        f" (48 images); service started (pid {pid}) serving v1 ({soak.first_fingerprint[:12]})",
    )


def test_b_an_asset_event_promotes_v2_and_the_service_swaps_to_it_under_load(soak: Soak) -> None:
    soak.require("a")
    started = time.monotonic()
    md5 = set_data(soak, 52)
    known = soak.client.run_ids(DAG_ID)
    with SearchLoad(soak.status["service"]["url"], pause_s=0.2) as load:
        soak.cli.check("trigger", "--asset-event")
        run_id = soak.client.wait_for_new_run(DAG_ID, known, timeout=300)
        swapped = wait_for_model(soak, run_id, "2")
        time.sleep(3)
    assert_run(soak, run_id, ALL_RAN)
    assert_created_by_an_event(soak, run_id)
    assert xcom(soak, run_id, "run_pipeline") == {
        "data_version": md5,
        "model_version": "2",
        "gate": "passed",
    }
    rolled = xcom(soak, run_id, "roll_service")
    assert (rolled["path"], rolled["model_version"]) == ("full", "2")
    served = load_line(load, swapped)

    state = check_state(soak, Expect(2, "2", "2", "1", 52, new_index=True))
    fingerprint = state["info"]["model_fingerprint"]
    assert fingerprint != soak.first_fingerprint
    soak.report(
        "b",
        started,
        f"asset event: v2 promoted, full rebuild, index {state['index']['current']} (52 images);"
        f" service swapped live to v2 ({fingerprint[:12]}), same pids; {served}",
    )


def wait_for_task_state(soak: Soak, run_id: str, task_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while (found := task_instance(soak, run_id, task_id))["state"] != state:
        assert found["state"] not in ("failed", "success"), found
        assert time.monotonic() < deadline, f"{task_id} still {found['state']}"
        time.sleep(1)
    return found


def retried_once(soak: Soak, run_id: str, task_id: str) -> float:
    """``task_id`` failed on try 1 and succeeded on try 2 (the API's task instance and its
    tries); returns the delay between them, which the DAG's retry policy sets."""
    from datetime import datetime

    ti = task_instance(soak, run_id, task_id)
    assert (ti["state"], ti["try_number"]) == ("success", 2), ti
    path = f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}"
    tries = soak.client.request("GET", f"{path}/tries")["task_instances"]
    assert [t["try_number"] for t in tries] == [1, 2], tries
    assert tries[0]["state"] in ("failed", "up_for_retry") and tries[1]["state"] == "success"
    log = soak.client.request("GET", f"{path}/logs/1")
    assert "not a DVC file" in json.dumps(log), "try 1 failed for another reason"
    failed = datetime.fromisoformat(tries[0]["end_date"])
    return (datetime.fromisoformat(tries[1]["start_date"]) - failed).total_seconds()


def test_c_a_task_is_retried_and_a_worse_model_stays_challenger_with_an_incremental_roll(
    soak: Soak,
) -> None:
    soak.require("b")
    started = time.monotonic()
    md5 = set_data(soak, 56, gate_floor=1000.0)  # a floor no model reaches: the gate refuses
    dvc_file = soak.project / "data.dvc"
    written = dvc_file.read_text()
    dvc_file.write_text("")  # the producer is rewriting it: opened (truncated), not yet written
    conf = {"project_root": str(soak.project), "params_file": "params.yaml"}
    run_id = soak.client.trigger(DAG_ID, conf)
    wait_for_task_state(soak, run_id, "detect_data_version", "up_for_retry")
    dvc_file.write_text(written)  # written now: the retry reads it
    assert_run(soak, run_id, NOT_PROMOTED)
    assert soak.client.run(DAG_ID, run_id)["run_type"] == "manual"
    delay = retried_once(soak, run_id, "detect_data_version")
    assert delay >= RETRY_DELAY_S, delay
    assert task_instance(soak, run_id, "run_pipeline")["try_number"] == 1
    assert xcom(soak, run_id, "run_pipeline") == {
        "data_version": md5,
        "model_version": "3",
        "gate": "failed",
    }
    rolled = xcom(soak, run_id, "roll_service")
    assert (rolled["path"], rolled["model_version"]) == ("incremental", "2")
    assert (rolled["added"], rolled["removed"], rolled["kept"]) == ("4", "0", "52")

    state = check_state(soak, Expect(3, "2", "3", "1", 56, new_index=True))
    assert state["registry"]["versions"]["3"]["gate"] == "failed"
    assert "below the floor" in state["registry"]["versions"]["3"]["gate_summary"]
    soak.report(
        "c",
        started,
        f"REST run: detect_data_version failed on try 1 (data.dvc being rewritten), retried "
        f"after {delay:.0f} s, run success; v3 gate failed (challenger, champion v2 kept); "
        f"incremental +4, index {state['index']['current']} (56 images), served live by v2",
    )


def test_d_a_rollback_and_up_serve_the_previous_champion_again_live(soak: Soak) -> None:
    soak.require("c")
    started = time.monotonic()
    url, (user, password) = soak.mlflow
    env = orchestrators.tool_env(
        soak.project,
        MLFLOW_TRACKING_URI=url,
        MLFLOW_TRACKING_USERNAME=user,
        MLFLOW_TRACKING_PASSWORD=password,
    )
    assert "champion: v2 -> v1" in dove(soak.project, "rollback", env=env)
    with SearchLoad(soak.status["service"]["url"], pause_s=0.2) as load:
        # `up` rolls out @champion (`dove deploy`: v1 into the store, a new index version
        # naming it) and waits until the running service serves it
        out = " ".join(soak.cli.check("up").split())
        swapped = time.monotonic()
        time.sleep(3)
    assert "already running, swapped live (no restart)" in out, out
    assert "serving @champion v1" in out, out
    served = load_line(load, swapped)

    state = check_state(soak, Expect(3, "1", "3", None, 56, new_index=True))
    assert state["info"]["model_fingerprint"] == soak.first_fingerprint
    assert state["registry"]["versions"]["2"]["rolled_back"] == "true"
    prepared = soak.project / "artifacts/prepared/synth"  # where the DAG's roll-outs index
    assert state["index"]["meta"]["images_root"] == str(prepared.resolve())
    soak.report(
        "d",
        started,
        f"dove rollback + dove stack up (dove deploy of v1): nothing registered, index "
        f"{state['index']['current']} (56 images) built by v1; service back on v1 "
        f"({soak.first_fingerprint[:12]}) live, same pids; {served}",
    )


def test_e_a_run_on_unchanged_data_is_a_no_op_and_keeps_the_rollback(soak: Soak) -> None:
    soak.require("d")
    started = time.monotonic()
    before = {"registry": registry(soak), "index": index_state(soak), "info": info(soak)}
    outputs = sorted((soak.project / "local_outputs").iterdir())
    done = soak.cli.run("trigger", "--wait", "--timeout", str(RUN_TIMEOUT), timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["dag_run_id"]
    assert_run(soak, run_id, NOT_PROMOTED)
    assert soak.client.run(DAG_ID, run_id)["run_type"] == "manual"
    assert xcom(soak, run_id, "run_pipeline") == {
        "data_version": data_md5(soak),
        "model_version": "3",
        "gate": "failed",
    }
    rolled = xcom(soak, run_id, "roll_service")
    current = before["index"]["current"]
    assert (rolled["path"], rolled["index_version"]) == ("unchanged", current)

    state = check_state(soak, Expect(3, "1", "3", None, 56, new_index=False))
    assert state["registry"] == before["registry"] and state["index"] == before["index"]
    assert state["info"] == before["info"]
    assert sorted((soak.project / "local_outputs").iterdir()) == outputs  # no pipeline ran
    out = " ".join(soak.cli.check("up").split())
    assert "already running, serving @champion v1" in out, out
    assert process_tree(soak.status["service"]["pid"]) == soak.service_pids
    soak.report(
        "e",
        started,
        f"REST run (`dove stack trigger --wait`), data unchanged: nothing registered (3 "
        f"versions, 3 runs FINISHED), no pipeline run, no index version (CURRENT {current}), "
        f"v1 still champion and served; up: no restart",
    )
