"""The committed KFP pipeline YAML matches the code, and says what the cluster must do."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.compile import compile_to_text
from dove_model.config import load_params

REPO_ROOT = Path(__file__).resolve().parents[2]


def _compiled() -> tuple[str, dict]:
    params = load_params(REPO_ROOT / "params.yaml")
    text = compile_to_text(params)
    return text, yaml.safe_load(text)


def test_committed_pipeline_yaml_is_up_to_date() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    committed = REPO_ROOT / params.pipeline.compiled_file
    assert committed.is_file(), "run `dove pipeline compile` and commit the YAML"
    assert committed.read_text(encoding="utf-8") == compile_to_text(params), (
        f"{committed} is stale: run `dove pipeline compile` and commit it"
    )


def test_every_stage_is_a_component_on_the_project_image_without_pip_installs() -> None:
    _, spec = _compiled()
    params = load_params(REPO_ROOT / "params.yaml")
    executors = spec["deploymentSpec"]["executors"]
    names = {name.removeprefix("exec-") for name in executors}
    assert names == {"prepare", "validate", "train", "evaluate", "register", "deploy"}
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == params.pipeline.image
        assert "pip install" not in " ".join(container["command"])


def test_train_requests_a_gpu_cpu_and_memory() -> None:
    _, spec = _compiled()
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert int(resources["accelerator"]["resourceCount"]) == 1
    assert resources["cpuRequest"] > 0 and resources["memoryRequest"] > 0


def test_typed_artifacts_and_the_data_version_parameter() -> None:
    _, spec = _compiled()
    root_inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert root_inputs["data_version"]["parameterType"] == "STRING"
    components = spec["components"]
    artifact_types = {
        (name, out): art["artifactType"]["schemaTitle"]
        for name, comp in components.items()
        for out, art in comp.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    assert artifact_types[("comp-prepare", "dataset")] == "system.Dataset"
    assert artifact_types[("comp-validate", "report")] == "system.HTML"
    assert artifact_types[("comp-train", "model")] == "system.Model"
    assert artifact_types[("comp-evaluate", "metrics")] == "system.Metrics"


def test_register_always_runs_and_only_deploy_waits_for_its_verdict() -> None:
    """The gate policy is the register stage's: no task compares a metric with a floor, the
    register task runs whatever the recalls, and deploy runs only if it promoted."""
    _, spec = _compiled()
    root_tasks = spec["root"]["dag"]["tasks"]
    assert {"prepare", "validate", "train", "evaluate", "register"} <= set(root_tasks)
    assert "triggerPolicy" not in root_tasks["register"]
    assert "parameters" not in spec["components"]["comp-evaluate"]["outputDefinitions"]
    conditions = [name for name in root_tasks if name.startswith("condition-")]
    assert conditions == ["condition-1"]
    promoted = root_tasks["condition-1"]["triggerPolicy"]["condition"]
    assert promoted == "inputs.parameter_values['pipelinechannel--register-Output'] == 'passed'"
    assert set(spec["components"]["comp-condition-1"]["dag"]["tasks"]) == {"deploy"}
