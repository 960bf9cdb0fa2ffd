"""`dove pipeline run --local` executes the KFP v2 pipeline for real with KFP's
SubprocessRunner: prepare -> validate -> train -> evaluate -> register -> deploy on the
smoke configuration (48 synthetic 64 px images, one epoch), once per project below: the
family is picked by params.yaml alone, the pipeline holds no family branch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dove_model.config import Params, load_params
from dove_model.registry.gates import GateVerdict
from dove_model.testing.smoke import clip_smoke, write_smoke_project

DOVE = str(Path(sys.executable).with_name("dove"))
TASKS = {"prepare", "validate", "train", "evaluate", "register", "deploy"}

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]


# family -> the smoke overrides that train it: DOVE (the smoke project as it is) and the
# clip family's tiny checkpoint zero-shot (nothing trains; its model directory carries its
# open_clip architecture config through the artifacts). The dual family's run through the
# orchestrators is tests/integration/test_gate_policy.py's.
PROJECTS: dict[str, Callable[[Path], dict[str, Any] | None]] = {
    "dove": lambda root: None,
    "clip": clip_smoke,
}


@pytest.fixture(scope="module", params=sorted(PROJECTS))
def local_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Params, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp(f"kfp-local-{request.param}")
    params = load_params(write_smoke_project(root, PROJECTS[request.param](root)))
    assert params.train.active.model.family == request.param
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["BENTOML_HOME"] = str(root / "bentoml_home")
    done = subprocess.run(
        [DOVE, "pipeline", "run", "--local", "--data-version", "smoke-v1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return root, params, done


def test_the_pipeline_runs_every_task_and_registers_a_champion(local_run) -> None:
    from mlflow import MlflowClient

    from dove_model.registry import alias_state
    from dove_model.registry.register import FAMILY_TAG
    from dove_model.registry.tracking import resolve_tracking_uri

    root, params, done = local_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "registered models:/dove-rs-retrieval/1" in done.stdout
    assert alias_state(params, root=root)["champion"] == "1"
    uri = resolve_tracking_uri(params.register_, root=root, environ={})
    version = MlflowClient(uri, uri).get_model_version(params.register_.model_name, "1")
    assert version.tags["pipeline_data_version"] == "smoke-v1"
    assert version.tags["gate"] == "passed"
    assert version.tags[FAMILY_TAG] == params.train.active.model.family


def test_each_task_left_its_typed_artifacts(local_run) -> None:
    from dove_model.index import load_archive
    from dove_model.model.directory import model_fingerprint

    root, params, done = local_run
    assert done.returncode == 0
    family = params.train.active.model.family
    (run_dir,) = (root / params.pipeline.local_root).iterdir()
    assert {p.name for p in run_dir.iterdir()} == TASKS
    dataset = run_dir / "prepare" / "dataset"
    assert (dataset / params.data.name / "manifest.parquet").is_file()
    assert (dataset / "data_version.txt").read_text().strip() == "smoke-v1"
    assert "<html" in (run_dir / "validate" / "report").read_text().lower()
    model_dir = run_dir / "train" / "model" / "model"
    assert (model_dir / "model.safetensors").is_file()
    trained = json.loads((run_dir / "train" / "executor_output.json").read_text())
    (artifact,) = trained["artifacts"]["model"]["artifacts"]
    assert artifact["metadata"] == {"format": "dove-model-dir/1", "family": family}
    history = json.loads((run_dir / "train" / "model" / "history.json").read_text())
    assert history["family"] == family and history["profile"] == params.train.profile
    metrics = json.loads((run_dir / "evaluate" / "metrics_json").read_text())
    assert {"i2t_r1", "t2i_r10", "mR"} <= set(metrics)
    evaluated = json.loads((run_dir / "evaluate" / "executor_output.json").read_text())
    assert "Output" not in evaluated.get("parameterValues", {})  # evaluate applies no gate
    registered = json.loads((run_dir / "register" / "executor_output.json").read_text())
    assert registered["parameterValues"]["Output"] == GateVerdict.PASSED
    registration = json.loads((run_dir / "register" / "registration").read_text())
    assert registration["promoted"] and registration["version"] == "1"
    index = load_archive(run_dir / "deploy" / "index", params.index)  # built by this model
    assert index.n_images == params.data.synth.n_images
    assert index.meta["family"] == family
    assert index.meta["model_fingerprint"] == model_fingerprint(model_dir)


def test_run_needs_exactly_one_of_local_or_host(tmp_path: Path) -> None:
    write_smoke_project(tmp_path)
    done = subprocess.run(
        [DOVE, "pipeline", "run"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "give exactly one of --local or --host URL" in done.stderr
