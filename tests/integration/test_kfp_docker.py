"""`dove pipeline run --local --runner docker`: the same KFP v2 pipeline with KFP's
DockerRunner, each component in its own container of the built pipeline image (podman's
Docker-compatible socket here), end to end on the smoke configuration to a gated, registered
model and a built index; the registry ends as it does under the SubprocessRunner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dove_model.config import Params, load_params
from dove_model.testing.orchestrators import registry_state
from dove_model.testing.smoke import write_smoke_project

# a first build on a fresh machine downloads and installs the locked wheels (minutes)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore"),
    pytest.mark.timeout(2400),
]

DOVE = str(Path(sys.executable).with_name("dove"))
TASKS = {"prepare", "validate", "train", "evaluate", "register", "deploy"}
# tags whose values name the run that made them, not what it registered
RUN_SPECIFIC = ("run_id", "source", "mlflow.", "created", "time", "duration")


def run_pipeline(root: Path, runner: str) -> tuple[Params, subprocess.CompletedProcess[str]]:
    params = load_params(write_smoke_project(root))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DOCKER_HOST")}
    env["BENTOML_HOME"] = str(root / "bentoml_home")
    done = subprocess.run(
        [DOVE, "pipeline", "run", "--local", "--runner", runner, "--data-version", "smoke-v1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return params, done


def comparable(state: dict) -> dict:
    return state | {
        "versions": {
            version: {k: v for k, v in tags.items() if not any(part in k for part in RUN_SPECIFIC)}
            for version, tags in state["versions"].items()
        }
    }


@pytest.fixture(scope="module")
def docker_run(container_engine, build_images, tmp_path_factory: pytest.TempPathFactory):
    if container_engine.name == "buildah":
        pytest.skip("buildah has no Docker-compatible API")
    build_images("pipeline")
    root = tmp_path_factory.mktemp("kfp-docker")
    params, done = run_pipeline(root, "docker")
    return root, params, done


def test_each_component_ran_in_its_own_container_to_a_registered_champion(docker_run) -> None:
    root, params, done = docker_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "registered models:/dove-rs-retrieval/1" in done.stdout
    log = done.stdout + done.stderr
    assert f"Found image '{params.pipeline.image}'" in log  # the local image, nothing pulled
    assert "Pulling image" not in log
    (run_dir,) = (root / params.pipeline.local_root).iterdir()
    assert {p.name for p in run_dir.iterdir()} == TASKS
    assert any((run_dir / "deploy" / "index").iterdir())
    assert registry_state(params, root)["aliases"]["champion"] == "1"


def test_the_registry_ends_as_under_the_subprocess_runner(
    docker_run, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root, params, done = docker_run
    assert done.returncode == 0
    other = tmp_path_factory.mktemp("kfp-subprocess")
    _, in_process = run_pipeline(other, "subprocess")
    assert in_process.returncode == 0, in_process.stderr[-4000:]
    assert comparable(registry_state(params, root)) == comparable(registry_state(params, other))


def test_an_unknown_runner_is_a_clear_error(tmp_path: Path) -> None:
    write_smoke_project(tmp_path)
    done = subprocess.run(
        [DOVE, "pipeline", "run", "--local", "--runner", "kubernetes"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "use subprocess or docker" in done.stderr
