"""Run the three orchestrators for real on a project, for the integration tests: ``dvc repro``,
``dove pipeline run --local`` (KFP's local runner) and Airflow's ``dag.test()``; make a fresh
clone of the working tree; read back the registry a run left.

Every tool runs as a subprocess of this venv with the project as its working directory, its
own BentoML home, no inherited ``MLFLOW_TRACKING_URI`` and telemetry off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from dove_model.config import Params

BIN = Path(sys.executable).parent
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "dove-ops tests",
    "GIT_COMMITTER_NAME": "dove-ops tests",
    "GIT_AUTHOR_EMAIL": "tests@dove-ops.invalid",
    "GIT_COMMITTER_EMAIL": "tests@dove-ops.invalid",
}
# commit_all's date: the same tree committed twice is the same commit (the git_revision tag)
FIXED_DATE = {
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}
DAG_ID = "dove_retraining"


def tool_env(project: Path, **extra: str) -> dict[str, str]:
    """The environment every tool of a test run gets."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["BENTOML_HOME"] = str(project / "bentoml_home")
    env |= {"DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env |= {"BENTOML_DO_NOT_TRACK": "true", **GIT_IDENTITY}
    return env | extra


def run_tool(
    project: Path, *command: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``project``; the caller checks the return code."""
    return subprocess.run(
        command,
        cwd=project,
        env=env or tool_env(project),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_tool(project: Path, *command: str, timeout: float = 900) -> str:
    """Run ``command`` in ``project``; its output, or an AssertionError with its tail."""
    done = run_tool(project, *command, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{command}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout + done.stderr


def fresh_clone(repo: Path, dst: Path) -> Path:
    """What ``git clone`` of ``repo`` would give if its working tree were committed: every
    file git tracks (as it is now), nothing ignored (no data/, no dvc.lock, no DVC cache),
    committed in a new repository at ``dst``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = repo / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)
    commit_all(dst, "fresh clone", init=True)
    return dst


def commit_all(project: Path, message: str, *, init: bool = False) -> None:
    """Commit every change in ``project`` (a new repository with ``init``)."""
    if init:
        check_tool(project, "git", "init", "-q", "-b", "main")
    check_tool(project, "git", "add", "-A")
    commit = ["git", "commit", "-q", "--allow-empty", "-m", message]
    done = run_tool(project, *commit, env=tool_env(project, **FIXED_DATE))
    if done.returncode != 0:
        raise AssertionError(f"git commit:\n{done.stdout}\n{done.stderr}")


def dvc(project: Path, *args: str) -> str:
    return check_tool(project, str(BIN / "dvc"), *args)


def kfp_local_run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dove pipeline run --local`` in ``project``."""
    return run_tool(project, str(BIN / "dove"), "pipeline", "run", "--local", *args)


def airflow_env(home: Path, dags_folder: Path, project: Path | None = None) -> dict[str, str]:
    """An Airflow of its own: sqlite metadata in ``home``, only ``dags_folder``."""
    env = tool_env(project or home)
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    return env


def migrate_airflow(home: Path, dags_folder: Path) -> None:
    env = airflow_env(home, dags_folder)
    done = run_tool(home, str(BIN / "airflow"), "db", "migrate", timeout=300, env=env)
    if done.returncode != 0:
        raise AssertionError(f"airflow db migrate:\n{done.stderr[-4000:]}")


DAG_TEST_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags[sys.argv[3]]
if sys.argv[4:]:  # only these tasks (their upstream left out)
    dag = dag.partial_subset(sys.argv[4].split(","), include_upstream=False)
conf = {"project_root": sys.argv[2], "params_file": "params.yaml", "kfp_host": ""}
run = dag.test(run_conf=conf)
tis = run.get_task_instances()
states = {ti.task_id: str(ti.state) for ti in tis}
xcoms = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in tis}
result = {"state": str(run.state), "tasks": states, "xcoms": xcoms}
print("RESULT " + json.dumps(result, default=str))
"""


def dag_test(
    home: Path, dags_folder: Path, project: Path, only: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``dag.test()`` of the retraining DAG on ``project`` (or of its tasks ``only``): the run
    state, the task states and each task's return value (XCom, None when it returned nothing
    or was skipped); the task logs are in ``output``."""
    env = airflow_env(home, dags_folder, project)
    script = [sys.executable, "-c", DAG_TEST_SCRIPT, str(dags_folder), str(project), DAG_ID]
    script += [",".join(only)] if only else []
    done = run_tool(project, *script, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise AssertionError(f"dag.test():\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("RESULT ")) | {"output": done.stdout + done.stderr}


def registry_state(params: Params, root: Path) -> dict[str, Any]:
    """Everything a registration leaves in the registry: the registered models, the model's
    aliases and each version's tags."""
    from mlflow import MlflowClient

    from dove_model.registry.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(params.register_, root=root, environ={})
    client = MlflowClient(uri, uri)
    name = params.register_.model_name
    versions = client.search_model_versions(f"name = '{name}'")
    return {
        "models": sorted(m.name for m in client.search_registered_models()),
        "aliases": {
            a: str(v) for a, v in sorted(client.get_registered_model(name).aliases.items())
        },
        "versions": {str(v.version): dict(sorted(v.tags.items())) for v in versions},
    }
