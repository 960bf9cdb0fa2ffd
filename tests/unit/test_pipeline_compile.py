"""The committed KFP pipeline YAML matches the code, and says what the cluster must do."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from components.compile import compile_to_text
from dove_model.config import load_params, parse_params

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


def _sharded(shards: int, **kwargs: object) -> dict:
    from kfp import compiler

    from components.pipeline import build_pipeline

    params = load_params(REPO_ROOT / "params.yaml")
    pipeline = build_pipeline(params.pipeline, shards=shards, **kwargs)
    with tempfile.TemporaryDirectory(prefix="dove-kfp-test-") as tmp:
        out = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, package_path=str(out))
        return yaml.safe_load(out.read_text(encoding="utf-8"))


def test_compile_reads_the_shard_count_from_params() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    raw = params.model_dump(mode="json", by_alias=True)
    raw["index"]["shards"] = 3
    spec = yaml.safe_load(compile_to_text(parse_params(raw)))
    assert "exec-merge-index" in spec["deploymentSpec"]["executors"]
    assert params.index.shards == 1  # the committed YAML: the single deploy task


def test_sharded_deploy_fans_out_over_the_shards_then_merges_the_collected_folders() -> None:
    spec = _sharded(3)
    names = set(spec["deploymentSpec"]["executors"])
    assert {"exec-index-shard", "exec-merge-index"} <= names and "exec-deploy" not in names
    tasks = spec["components"]["comp-condition-1"]["dag"]["tasks"]
    (loop,) = (name for name in tasks if name.startswith("for-loop-"))
    assert set(tasks) == {loop, "merge-index"}
    assert tasks[loop]["parameterIterator"]["items"]["raw"] == "[0, 1, 2]"
    assert tasks[loop]["taskInfo"]["name"] == "index-shards"
    body = spec["components"][tasks[loop]["componentRef"]["name"]]
    shard = body["dag"]["tasks"]["index-shard"]
    assert shard["inputs"]["parameters"]["shard_count"]["runtimeValue"]["constant"] == 3
    assert "componentInputParameter" in shard["inputs"]["parameters"]["shard_index"]
    assert shard["retryPolicy"]["maxRetryCount"] == 2
    collected = body["outputDefinitions"]["artifacts"]
    assert all(a["isArtifactList"] for a in collected.values())
    merge = tasks["merge-index"]
    assert merge["dependentTasks"] == [loop]
    source = merge["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]
    assert source["producerTask"] == loop and source["outputArtifactKey"] in collected
    assert merge["taskInfo"]["name"] == "deploy"
    merge_inputs = spec["components"]["comp-merge-index"]["inputDefinitions"]
    assert merge_inputs["artifacts"]["shards"]["isArtifactList"]


def test_shard_tasks_ask_for_a_gpu_only_when_told_and_then_get_the_gpu_placement() -> None:
    from components.pipeline import ShardResources
    from dove_model.pipeline.platform import with_platform_config

    def shard_resources(spec: dict) -> dict:
        return spec["deploymentSpec"]["executors"]["exec-index-shard"]["container"]["resources"]

    cpu_only = _sharded(2)
    assert "accelerator" not in shard_resources(cpu_only)
    assert shard_resources(cpu_only)["cpuRequest"] == 2
    gpu = _sharded(2, shard_resources=ShardResources(accelerator="nvidia.com/gpu"))
    assert shard_resources(gpu)["accelerator"]["resourceType"] == "nvidia.com/gpu"
    for spec, placed in ((cpu_only, False), (gpu, True)):
        platform = with_platform_config(spec)[1]["platforms"]["kubernetes"]
        config = platform["deploymentSpec"]["executors"]["exec-index-shard"]
        assert ("tolerations" in config) == placed and ("nodeSelector" in config) == placed
