"""The Airflow Helm values: the focused chart schema, and what they must agree with."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from dove_model.config import load_params
from infra import manifests
from infra.manifests import ManifestError, check_helm_values

REPO_ROOT = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load(manifests.HELM_VALUES.read_text(encoding="utf-8"))


def write_values(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_values_pass_the_focused_chart_schema() -> None:
    check_helm_values()


@pytest.mark.parametrize(
    "breakage",
    [
        lambda v: v["dags"]["gitSync"].update(subpath="dags"),  # key typo
        lambda v: v.update(executor="KubernetesExecuter"),
        lambda v: v["images"]["pod_template"].update(tag="latest"),
        lambda v: v["secret"][0].pop("secretKey"),
        lambda v: v["workers"]["resources"].update(request={"cpu": 1}),  # core schema
    ],
)
def test_the_schema_rejects_a_broken_value(tmp_path: Path, breakage: Any) -> None:
    broken = copy.deepcopy(VALUES)
    breakage(broken)
    with pytest.raises(ManifestError):
        check_helm_values(write_values(tmp_path, broken))


def test_kubernetes_executor_runs_tasks_in_the_pipeline_image() -> None:
    assert VALUES["executor"] == "KubernetesExecutor"
    image = VALUES["images"]["pod_template"]
    params = load_params(REPO_ROOT / "params.yaml")
    assert f"{image['repository']}:{image['tag']}" == params.pipeline.image


def test_git_sync_points_at_the_dags_of_this_repository() -> None:
    sync = VALUES["dags"]["gitSync"]
    assert sync["enabled"] and not VALUES["dags"]["persistence"]["enabled"]
    dags_dir = REPO_ROOT / sync["subPath"]
    assert any(dags_dir.glob("*.py")), dags_dir
    assert (dags_dir.parent / "params.yaml").is_file()  # the DAG's project_root


@pytest.mark.skipif(manifests.find_kubectl() is None, reason="kubectl is not installed")
def test_connections_and_endpoints_match_the_cluster() -> None:
    env_names = {s["envName"] for s in VALUES["secret"]}
    assert {"AIRFLOW_CONN_KFP_DEFAULT", "AIRFLOW_CONN_MLFLOW_DEFAULT"} <= env_names
    env = {e["name"]: e["value"] for e in VALUES["env"]}
    base = manifests.build(manifests.INFRA_DIR / "k8s" / "base")
    endpoints = next(o for o in base if o["metadata"]["name"] == "dove-endpoints")["data"]
    assert env["MLFLOW_TRACKING_URI"] == endpoints["MLFLOW_TRACKING_URI"]


def test_the_guide_creates_every_secret_the_values_name() -> None:
    guide = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    names = {s["secretName"] for s in VALUES["secret"]}
    names |= {VALUES["data"]["metadataSecretName"], VALUES["fernetKeySecretName"]}
    names |= {VALUES["apiSecretKeySecretName"], VALUES["jwtSecretName"]}
    for name in names:
        assert f"kubectl -n airflow create secret generic {name}" in guide, name
