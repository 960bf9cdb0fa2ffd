"""`dvc repro` runs prepare -> validate -> train -> evaluate -> register -> deploy for real.

The project is a temporary git + DVC repository holding this repo's dvc.yaml, the smoke
parameters (48 synthetic 64 px images, one epoch) and a copy of the code folders the stages
list as dependencies (the `dove` commands themselves run from this checkout's venv).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dove_model.config import load_params
from dove_model.testing.smoke import write_smoke_project

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STAGES = ("prepare", "validate", "train", "evaluate", "register", "deploy")

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["BENTOML_HOME"] = str(project / "bentoml_home")
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "dove-ops tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@dove-ops.invalid"
    return env


def _run(project: Path, *command: str, timeout: float = 600) -> str:
    done = subprocess.run(
        command,
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dove_model.data.prepare import ensure_synth

    root = tmp_path_factory.mktemp("dvc-project")
    shutil.copy(REPO_ROOT / "dvc.yaml", root / "dvc.yaml")
    for folder in {
        dep.split("/")[0]
        for stage in yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"].values()
        for dep in stage.get("deps", [])
        if dep.startswith("dove_model")
    }:
        shutil.copytree(
            REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    params = load_params(write_smoke_project(root))
    with contextlib.chdir(root):
        ensure_synth(params.data, progress=False)
    shutil.copy(REPO_ROOT / ".gitignore", root / ".gitignore")  # the project's own rules
    _run(root, "git", "init", "-q", "-b", "main")
    _run(root, str(BIN / "dvc"), "init", "-q")
    _run(root, str(BIN / "dvc"), "config", "core.analytics", "false")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-q", "-m", "smoke project")
    return root


@pytest.fixture(scope="module")
def first_repro(project: Path) -> str:
    return _run(project, str(BIN / "dvc"), "repro")


def test_repro_runs_every_stage_and_registers_a_champion(project: Path, first_repro: str) -> None:
    from dove_model.registry import alias_state

    for stage in STAGES:
        assert f"Running stage '{stage}'" in first_repro
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert set(STAGES) <= set(lock)
    metrics = json.loads((project / "metrics.json").read_text())
    assert 0.0 <= metrics["mR"] <= 100.0
    registration = json.loads((project / "reports/registration.json").read_text())
    assert registration["version"] == "1" and registration["promoted"]
    for plot in ("training_curves.png", "recall_bars.png"):
        assert (project / "reports/plots" / plot).read_bytes().startswith(b"\x89PNG")
    params = load_params(project / "params.yaml")
    assert alias_state(params, root=project)["champion"] == "1"
    assert any((project / params.index.out_dir).iterdir())
    shown = _run(project, str(BIN / "dvc"), "metrics", "show", "--json")
    assert '"mR"' in shown


def test_second_repro_does_nothing(project: Path, first_repro: str) -> None:
    output = _run(project, str(BIN / "dvc"), "repro")
    assert "Running stage" not in output
    assert "up to date" in output


def test_exp_run_with_set_param_reruns_only_what_changed(project: Path, first_repro: str) -> None:
    from dove_model.registry import alias_state

    _run(project, "git", "add", "-A")
    _run(project, "git", "commit", "-q", "-m", "first repro")
    output = _run(
        project,
        str(BIN / "dvc"),
        "exp",
        "run",
        "--set-param",
        "index.hnsw_ef_search=32",
    )
    assert "Running stage 'deploy'" in output
    for stage in ("prepare", "validate", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" not in output
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["index"]["hnsw_ef_search"] == 32
    state = alias_state(load_params(project / "params.yaml"), root=project)
    assert state == {"champion": "1", "previous-champion": None, "challenger": "1"}
