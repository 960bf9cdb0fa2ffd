"""`dove stack` runtimes without an engine: which runtime an ``up`` takes, and the engine
command each contained service starts with (pure command building: nothing runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from infra.stack import airflow, containers, mlflow
from infra.stack.config import Layout, StackError
from infra.stack.environment import base_env, venv_bin
from infra.stack.state import State


@pytest.mark.parametrize(
    ("requested", "engine_runs", "image_ready", "previous", "chosen"),
    [
        ("processes", True, True, "", "processes"),
        ("auto", True, True, "", "containers"),
        ("auto", False, False, "", "processes"),
        ("auto", True, False, "", "processes"),  # the image did not build
        ("containers", True, True, "", "containers"),
        ("auto", True, True, "processes", "processes"),  # what runs keeps its runtime
        ("auto", False, False, "containers", "containers"),
        ("containers", True, True, "containers", "containers"),
    ],
)
def test_the_runtime_of_an_up(
    requested: str, engine_runs: bool, image_ready: bool, previous: str, chosen: str
) -> None:
    assert containers.choose_runtime(requested, engine_runs, image_ready, previous) == chosen


def test_containers_without_an_engine_or_image_and_a_switch_while_running_are_refused() -> None:
    with pytest.raises(StackError, match="no container engine"):
        containers.choose_runtime("containers", False, False, "")
    with pytest.raises(StackError, match="no pipeline image"):
        containers.choose_runtime("containers", True, False, "")
    with pytest.raises(StackError, match="stack down"):
        containers.choose_runtime("containers", True, True, "processes")
    with pytest.raises(StackError, match="stack down"):
        containers.choose_runtime("processes", True, True, "containers")
    with pytest.raises(StackError, match="use one of auto, containers, processes"):
        containers.check_runtime("docker")


def test_container_names_are_per_state_folder() -> None:
    one, two = Layout(Path("/tmp/a/.stack")), Layout(Path("/tmp/b/.stack"))
    name = containers.container_name(one, "airflow-scheduler")
    assert name.startswith("dove-stack-") and name.endswith("-airflow-scheduler")
    assert name == containers.container_name(Layout(Path("/tmp/a/.stack")), "airflow-scheduler")
    assert name != containers.container_name(two, "airflow-scheduler")


def test_host_commands_become_the_images_commands(tmp_path: Path) -> None:
    layout = Layout(tmp_path / ".stack")
    assert containers.container_argv(mlflow.command(5000, 5432, layout, 1))[:2] == [
        "mlflow",
        "server",
    ]
    assert containers.container_argv(airflow.command("scheduler")) == [
        "airflow",
        "scheduler",
        "--skip-serve-logs",
    ]
    serve = [sys.executable, "-m", "bentoml", "serve", "service:DoveRetrieval"]
    assert containers.container_argv(serve) == ["python", *serve[1:]]
    assert containers.container_argv(["/usr/bin/env", "true"]) == ["/usr/bin/env", "true"]
    assert str(venv_bin()) not in " ".join(containers.container_argv(airflow.command("api-server")))


def test_only_the_stacks_own_environment_goes_into_a_container(tmp_path: Path) -> None:
    caller = {"PATH": "/somewhere/bin", "VIRTUAL_ENV": "/x/.venv", "SECRET_TOKEN": "s"}
    caller |= {"AIRFLOW__CORE__DAGS_FOLDER": "/elsewhere", "DOVE_MODEL_TAG": "stale"}
    env = base_env(caller) | {"AIRFLOW_HOME": "/st/airflow", "MLFLOW_TRACKING_URI": "http://x"}
    inside = containers.container_env(env, tmp_path / "home")
    assert inside["AIRFLOW_HOME"] == "/st/airflow"
    assert inside["MLFLOW_TRACKING_URI"] == "http://x"
    assert inside["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert inside["HOME"] == str(tmp_path / "home")
    for name in ("PATH", "VIRTUAL_ENV", "SECRET_TOKEN", "AIRFLOW__CORE__DAGS_FOLDER"):
        assert name not in inside
    assert "DOVE_MODEL_TAG" not in inside  # the caller's is dropped by base_env


def test_mounts_drop_folders_inside_another_one(tmp_path: Path) -> None:
    project = tmp_path / "project"
    found = containers.mounts([project / ".stack", project, project / "dags", tmp_path / "st"])
    assert found == [project.resolve(), (tmp_path / "st").resolve()]


def test_the_run_command_of_a_contained_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(containers.os, "geteuid", lambda: 1000)  # a rootless caller
    command = airflow.command("scheduler")
    run = containers.run_command(
        "/usr/bin/podman", "podman", "dove-stack-0123abcd-airflow-scheduler",
        "ghcr.io/dove-ops/dove:0.1.0", command,
        env_names=["AIRFLOW_HOME", "HOME"], volumes=[tmp_path, tmp_path / "dags"],
        cwd=tmp_path / "airflow", ids=(1000, 1000),
    )  # fmt: skip
    assert run[:6] == ["/usr/bin/podman", "run", "--rm", "--name", run[4], "--network=host"]
    assert run[4] == "dove-stack-0123abcd-airflow-scheduler"
    assert run[-4:] == ["ghcr.io/dove-ops/dove:0.1.0", "airflow", "scheduler", "--skip-serve-logs"]
    text = " ".join(run)
    assert "--user 1000:1000 --userns=keep-id" in text
    assert f"--volume {tmp_path.resolve()}:{tmp_path.resolve()}" in text
    assert text.count("--volume") == 1
    assert f"--workdir {tmp_path / 'airflow'}" in text
    assert "--env AIRFLOW_HOME --env HOME" in text  # names only: values never on the line
    assert "--publish" not in text and "-p" not in run
    root = containers.run_command(
        "/usr/bin/docker", "docker", "n", "img", command, env_names=[], volumes=[tmp_path],
        cwd=tmp_path, ids=(0, 0),
    )  # fmt: skip
    assert "--user 0:0" in " ".join(root) and "--userns=keep-id" not in root
    monkeypatch.setattr(containers.os, "geteuid", lambda: 0)  # root runs another uid: no keep-id
    assert containers.user_args("podman", 101, 104) == ["--user", "101:104"]


def test_the_state_remembers_runtime_and_containers() -> None:
    state = State(runtime="containers", containers={"mlflow": "dove-stack-0123abcd-mlflow"})
    again = State.from_json(state.to_json())
    assert again.runtime == "containers" and again.containers == state.containers
    assert State.from_json({"version": 1}).runtime == ""  # a state from before runtimes
