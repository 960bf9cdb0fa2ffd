"""Add the Kubernetes platform config to a compiled KFP v2 pipeline (what kfp-kubernetes writes).

The compiled ``components/pipeline.yaml`` already asks for the train task's GPU
(``set_accelerator_type``); this adds what only the Kubernetes platform spec can say:
- a toleration (and node selector) so the train pod lands on tainted GPU nodes;
- for every task, the endpoints ConfigMap, the S3 Secret (the DVC remote's MinIO user) and
  the MLflow pipeline account's Secret as environment variables and the DVC config mounted
  at /etc/xdg/dvc, so the stages reach MLflow, MinIO and the DVC remote;
- for every task, the pod label the dove-ops NetworkPolicies admit to MLflow and MinIO
  (infra/k8s/base/network): a pod without it is refused there.
The result is the pipeline document followed by a ``platforms`` document, the multi-document
form KFP's API server accepts. Field names follow kfp-kubernetes' KubernetesExecutorConfig.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from dove_model.atomic import write_text
from dove_model.config import Params
from dove_model.errors import DoveError

PipelineDoc = dict[str, Any]


@dataclass(frozen=True)
class Placement:
    """What the cluster needs from each task; the defaults match infra/k8s."""

    gpu_tasks: tuple[str, ...] = ("train",)
    gpu_toleration_key: str = "nvidia.com/gpu"
    gpu_node_labels: dict[str, str] = field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}
    )
    endpoints_config_map: str = "dove-endpoints"
    endpoint_keys: tuple[str, ...] = (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
    )
    s3_secret: str = "dove-s3"
    s3_keys: tuple[str, ...] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    mlflow_secret: str = "dove-mlflow-pipeline"
    mlflow_keys: tuple[str, ...] = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    pod_labels: dict[str, str] = field(default_factory=lambda: {"dove-ops.io/pipeline": "true"})
    dvc_config_map: str = "dove-dvc-config"
    dvc_config_dir: str = "/etc/xdg/dvc"


def executor_names(pipeline: PipelineDoc) -> dict[str, str]:
    """Task (component) name -> executor label, e.g. ``train`` -> ``exec-train``."""
    executors = pipeline.get("deploymentSpec", {}).get("executors", {})
    return {label.removeprefix("exec-"): label for label in executors}


def executor_config(task: str, placement: Placement) -> dict[str, Any]:
    config: dict[str, Any] = {
        "configMapAsEnv": [
            {
                "configMapName": placement.endpoints_config_map,
                "keyToEnv": [{"configMapKey": k, "envVar": k} for k in placement.endpoint_keys],
            }
        ],
        "secretAsEnv": [
            {
                "secretName": placement.s3_secret,
                "keyToEnv": [{"secretKey": k, "envVar": k} for k in placement.s3_keys],
            },
            {
                "secretName": placement.mlflow_secret,
                "keyToEnv": [{"secretKey": k, "envVar": k} for k in placement.mlflow_keys],
            },
        ],
        "configMapAsVolume": [
            {
                "configMapName": placement.dvc_config_map,
                "mountPath": placement.dvc_config_dir,
                "optional": False,
            }
        ],
    }
    if placement.pod_labels:
        config["podMetadata"] = {"labels": dict(placement.pod_labels)}
    if task in placement.gpu_tasks:
        config["tolerations"] = [
            {"key": placement.gpu_toleration_key, "operator": "Exists", "effect": "NoSchedule"}
        ]
        config["nodeSelector"] = {"labels": dict(placement.gpu_node_labels)}
    return config


def _accelerator(pipeline: PipelineDoc, label: str) -> Any:
    container = pipeline["deploymentSpec"]["executors"][label].get("container", {})
    return container.get("resources", {}).get("accelerator")


def with_platform_config(
    pipeline: PipelineDoc, placement: Placement | None = None
) -> list[PipelineDoc]:
    """``[pipeline, platforms]``; raises ValueError when a GPU task has no GPU request."""
    placement = placement or Placement()
    names = executor_names(pipeline)
    if not names:
        raise ValueError("no deploymentSpec.executors: not a compiled KFP v2 pipeline")
    for task in placement.gpu_tasks:
        if task not in names:
            raise ValueError(f"no task {task!r} among {sorted(names)}")
        if not _accelerator(pipeline, names[task]):
            raise ValueError(f"task {task!r} asks for no accelerator (set_accelerator_type)")
    # a task that asks for an accelerator (an index_shard with ShardResources.accelerator)
    # gets the same toleration and node selector as the train task
    asking = {t for t, label in names.items() if _accelerator(pipeline, label)}
    placement = replace(placement, gpu_tasks=(*placement.gpu_tasks, *sorted(asking)))
    executors = {label: executor_config(task, placement) for task, label in names.items()}
    platforms = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}
    return [copy.deepcopy(pipeline), platforms]


def build_package(params: Params, root: Path, out: Path) -> Path:
    """The compiled pipeline plus its platform config, written atomically to ``out``."""
    compiled = root / params.pipeline.compiled_file
    if not compiled.is_file():
        raise DoveError(
            f"{compiled}: compiled pipeline not found; run `dove pipeline compile` first"
        )
    docs = [d for d in yaml.safe_load_all(compiled.read_text(encoding="utf-8")) if d]
    if len(docs) != 1:
        raise DoveError(f"{compiled}: expected one pipeline document, found {len(docs)}")
    try:
        package = with_platform_config(docs[0])
    except ValueError as exc:
        raise DoveError(f"{compiled}: {exc}") from None
    write_text(out, yaml.safe_dump_all(package, sort_keys=False))
    return out
