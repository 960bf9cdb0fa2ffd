"""The KFP upload: the committed compiled pipeline gains its cluster placement offline.

No KFP API server runs here: the package is built from the real components/pipeline.yaml and
read back with KFP's own loader; the calls on kfp.Client are checked against its signature.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import kfp
import pytest
import yaml
from google.protobuf import json_format
from kfp import components

from dove_model.errors import DoveError
from dove_model.pipeline.platform import Placement, with_platform_config
from infra import manifests
from infra.kfp import upload

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPILED = REPO_ROOT / "components" / "pipeline.yaml"

pytestmark = pytest.mark.skipif(not COMPILED.is_file(), reason="components/pipeline.yaml absent")


def load_pipeline() -> dict:
    return yaml.safe_load(COMPILED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kfp") / "pipeline-cluster.yaml"
    assert upload.main(["--root", str(REPO_ROOT), "--dry-run", "--out", str(out)]) == 0
    return out


def platform_executors(package: Path) -> dict:
    """The platform spec as KFP's loader parses it (a malformed document fails here)."""
    loaded = components.load_component_from_file(str(package))
    spec = json_format.MessageToDict(loaded.platform_spec)
    return spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_train_tolerates_gpu_taints_and_keeps_its_gpu_request(package: Path) -> None:
    executors = platform_executors(package)
    train = executors["exec-train"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in train[
        "tolerations"
    ]
    assert train["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    pipeline = next(yaml.safe_load_all(package.read_text()))
    resources = pipeline["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    for name, config in executors.items():
        if name != "exec-train":
            assert "tolerations" not in config, name


@pytest.mark.skipif(manifests.find_kubectl() is None, reason="kubectl is not installed")
def test_every_task_gets_endpoints_and_credentials_that_the_overlays_define(
    package: Path, tmp_path: Path
) -> None:
    infra_copy = manifests.with_throwaway_secrets(manifests.INFRA_DIR, tmp_path)
    objects = manifests.build(infra_copy / "k8s" / "overlays" / "local")
    data = {(o["kind"], o["metadata"]["name"]): o.get("data", {}) for o in objects}
    executors = platform_executors(package)
    assert set(executors) == {f"exec-{t}" for t in upload_tasks()}
    for config in executors.values():
        for source in config["configMapAsEnv"]:
            keys = {k["configMapKey"] for k in source["keyToEnv"]}
            assert keys <= set(data[("ConfigMap", source["configMapName"])])
        for source in config["secretAsEnv"]:
            keys = {k["secretKey"] for k in source["keyToEnv"]}
            assert keys <= set(data[("Secret", source["secretName"])])
        (volume,) = config["configMapAsVolume"]
        assert "config" in data[("ConfigMap", volume["configMapName"])]


def upload_tasks() -> set[str]:
    return {label.removeprefix("exec-") for label in load_pipeline()["deploymentSpec"]["executors"]}


def test_a_missing_compiled_pipeline_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    code = upload.main(["--root", str(tmp_path), "--dry-run", "--data-version", "v1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "components/pipeline.yaml: compiled pipeline not found" in err
    assert "dove pipeline compile" in err


def test_a_gpu_task_without_a_gpu_request_is_refused() -> None:
    pipeline = load_pipeline()
    del pipeline["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    with pytest.raises(ValueError, match="accelerator"):
        with_platform_config(pipeline)
    with pytest.raises(ValueError, match="no task 'fit'"):
        with_platform_config(load_pipeline(), Placement(gpu_tasks=("fit",)))


@pytest.mark.parametrize(
    ("expression", "valid"),
    [("0 0 3 * * 1", True), ("0 */30 * * * *", True), ("0 3 * * 1", False), ("x 0 3 * * 1", False)],
)
def test_cron_needs_kfp_six_fields(expression: str, valid: bool) -> None:
    if valid:
        assert upload.check_cron(expression) == expression
    else:
        with pytest.raises(DoveError):
            upload.check_cron(expression)


def test_the_client_calls_match_the_installed_kfp_sdk() -> None:
    used = {
        "get_pipeline_id": {"name"},
        "upload_pipeline": {"pipeline_package_path", "pipeline_name"},
        "upload_pipeline_version": {
            "pipeline_package_path",
            "pipeline_version_name",
            "pipeline_id",
        },
        "list_pipeline_versions": {"pipeline_id", "page_size"},
        "create_experiment": {"name"},
        "list_recurring_runs": {"experiment_id", "page_size"},
        "delete_recurring_run": {"recurring_run_id"},
        "create_recurring_run": {
            "experiment_id",
            "job_name",
            "cron_expression",
            "max_concurrency",
            "no_catchup",
            "params",
            "pipeline_id",
            "version_id",
            "enable_caching",
        },
    }
    for method, parameters in used.items():
        signature = inspect.signature(getattr(kfp.Client, method))
        assert parameters <= set(signature.parameters), (method, signature)
