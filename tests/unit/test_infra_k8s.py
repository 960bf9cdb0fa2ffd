"""The Kubernetes manifests: every kustomization builds and every object passes its schema.

Nothing here reaches a cluster: ``kubectl kustomize`` renders the overlays and the objects
are validated against the Kubernetes OpenAPI schemas offline (infra/manifests.py).
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import manifests
from infra.manifests import ManifestError, build, validate_object

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
K8sObject = dict[str, Any]

pytestmark = pytest.mark.skipif(
    manifests.find_kubectl() is None, reason="kubectl is not installed (apt-get install kubectl)"
)


@pytest.fixture(scope="module")
def infra_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """infra/ copied with freshly generated local secrets (the real ones are git-ignored)."""
    return manifests.with_throwaway_secrets(manifests.INFRA_DIR, tmp_path_factory.mktemp("k8s"))


@pytest.fixture(scope="module")
def rendered(infra_copy: Path) -> dict[str, list[K8sObject]]:
    return {name: build(infra_copy / name) for name in manifests.KUSTOMIZATIONS}


def by_kind(objects: list[K8sObject], kind: str) -> dict[str, K8sObject]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def pod_specs(objects: list[K8sObject]) -> list[tuple[str, K8sObject]]:
    """(owner, pod spec) for every workload, PyTorchJob replicas included."""
    specs = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in {"Deployment", "StatefulSet", "Job"}:
            specs.append((name, obj["spec"]["template"]["spec"]))
        elif obj["kind"] == "PyTorchJob":
            for role, replica in obj["spec"]["pytorchReplicaSpecs"].items():
                specs.append((f"{name}/{role}", replica["template"]["spec"]))
    return specs


def test_every_object_of_every_kustomization_passes_its_schema(
    rendered: dict[str, list[K8sObject]],
) -> None:
    kinds = set()
    for objects in rendered.values():
        for obj in objects:
            validate_object(obj)
            kinds.add(obj["kind"])
    assert {"StatefulSet", "Deployment", "HorizontalPodAutoscaler", "PyTorchJob"} <= kinds


def _first_container(obj: K8sObject, role: str = "Master") -> K8sObject:
    if obj["kind"] == "PyTorchJob":
        return obj["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]["containers"][0]
    return obj["spec"]["template"]["spec"]["containers"][0]


BREAKAGES = {
    "container field typo": ("Deployment", lambda o: _first_container(o).update(imagePolicy="x")),
    "wrong type": ("HorizontalPodAutoscaler", lambda o: o["spec"].update(minReplicas="two")),
    "bad restart policy": (
        "PyTorchJob",
        lambda o: o["spec"]["pytorchReplicaSpecs"]["Worker"].update(restartPolicy="Sometimes"),
    ),
    "no pytorch container": ("PyTorchJob", lambda o: _first_container(o).update(name="trainer")),
    "typo in a pod template": (
        "PyTorchJob",
        lambda o: _first_container(o)["resources"].update(limit={}),
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_validation_rejects_a_broken_object(
    rendered: dict[str, list[K8sObject]], breakage: str
) -> None:
    kind, mutate = BREAKAGES[breakage]
    objects = [o for objs in rendered.values() for o in objs if o["kind"] == kind]
    broken = copy.deepcopy(objects[0])
    mutate(broken)
    with pytest.raises(ManifestError):
        validate_object(broken)


def test_a_kind_without_a_schema_is_an_error_not_a_pass() -> None:
    unknown = {"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "x"}}
    with pytest.raises(ManifestError, match="vendor a schema"):
        validate_object(unknown)


def test_a_kustomization_that_does_not_build_names_its_folder(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(ManifestError, match=re.escape(str(tmp_path))):
        build(tmp_path)


def test_workloads_run_as_non_root_with_bounded_resources(
    rendered: dict[str, list[K8sObject]],
) -> None:
    for objects in rendered.values():
        for owner, spec in pod_specs(objects):
            assert spec["securityContext"]["runAsNonRoot"] is True, owner
            assert spec["securityContext"]["runAsUser"] > 0, owner
            # the namespace enforces the "restricted" Pod Security Standard
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", owner
            for container in spec["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, owner
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], owner
                assert "memory" in container["resources"]["limits"], owner
                assert container["resources"]["requests"], owner
                image = container["image"]
                assert re.search(r":[\w][\w.-]*$", image), f"{owner}: untagged image {image}"
                assert not image.endswith(":latest"), f"{owner}: {image}"


def test_serving_probes_port_and_autoscaling(rendered: dict[str, list[K8sObject]]) -> None:
    for overlay in ("k8s/overlays/local", "k8s/overlays/prod"):
        objects = rendered[overlay]
        deployment = by_kind(objects, "Deployment")["dove-retrieval"]
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["ports"][0]["containerPort"] == 3000
        hpa = by_kind(objects, "HorizontalPodAutoscaler")["dove-retrieval"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == "dove-retrieval"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        labels = pod["metadata"]["labels"]
        pdb = by_kind(objects, "PodDisruptionBudget")["dove-retrieval"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        if overlay.endswith("local"):  # one replica: a minAvailable PDB would block drains
            assert "minAvailable" not in pdb["spec"]
        else:
            assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_the_gpu_component_schedules_prod_serving_on_tainted_gpu_nodes(
    rendered: dict[str, list[K8sObject]],
) -> None:
    prod = by_kind(rendered["k8s/overlays/prod"], "Deployment")["dove-retrieval"]["spec"]
    local = by_kind(rendered["k8s/overlays/local"], "Deployment")["dove-retrieval"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in prod[
        "template"
    ]["spec"]["tolerations"]
    assert prod["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "tolerations" not in local["template"]["spec"]


def test_every_service_selects_a_workload(rendered: dict[str, list[K8sObject]]) -> None:
    for overlay in ("k8s/overlays/local", "k8s/overlays/prod"):
        objects = rendered[overlay]
        pod_labels = [
            obj["spec"]["template"]["metadata"]["labels"]
            for obj in objects
            if obj["kind"] in {"Deployment", "StatefulSet"}
        ]
        for name, service in by_kind(objects, "Service").items():
            selector = service["spec"]["selector"].items()
            assert any(selector <= labels.items() for labels in pod_labels), name


def test_objects_land_in_the_dove_ops_namespace(rendered: dict[str, list[K8sObject]]) -> None:
    for objects in rendered.values():
        for obj in objects:
            if obj["kind"] != "Namespace":
                assert obj["metadata"].get("namespace") == "dove-ops", obj["metadata"]["name"]


def referenced_secrets(objects: list[K8sObject]) -> set[str]:
    names: set[str] = set()
    for _, spec in pod_specs(objects):
        for container in spec["containers"]:
            names |= {
                e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e
            }
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
    return names


def test_prod_commits_no_secret_and_the_guide_says_how_to_create_each(
    rendered: dict[str, list[K8sObject]],
) -> None:
    prod = rendered["k8s/overlays/prod"] + rendered["training"] + rendered["jobs/index-build"]
    assert not by_kind(prod, "Secret")
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    for name in referenced_secrets(prod):
        assert f"kubectl -n dove-ops create secret generic {name}" in guide, name


def test_local_secrets_cover_every_reference_and_s3_keys_are_not_the_root_account(
    rendered: dict[str, list[K8sObject]],
) -> None:
    local = rendered["k8s/overlays/local"] + rendered["training"] + rendered["jobs/index-build"]
    secrets = by_kind(local, "Secret")
    assert referenced_secrets(local) <= set(secrets)
    minio = secrets["dove-minio"]["data"]
    for name in ("dove-s3", "dove-s3-mlflow"):  # scoped users the bucket Job creates
        s3 = secrets[name]["data"]
        assert s3["AWS_ACCESS_KEY_ID"] != minio["MINIO_ROOT_USER"], name
        assert s3["AWS_SECRET_ACCESS_KEY"] != minio["MINIO_ROOT_PASSWORD"], name


def test_local_secret_files_are_git_ignored_and_never_overwritten(tmp_path: Path) -> None:
    secrets_dir = manifests.INFRA_DIR / "k8s" / "overlays" / "local" / "secrets"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(secrets_dir / "postgres.env")],
        cwd=REPO_ROOT,
        check=False,
    )
    assert ignored.returncode == 0
    from infra.k8s.overlays.local import make_secrets

    assert make_secrets.main(["--out", str(tmp_path)]) == 0
    first = (tmp_path / "postgres.env").read_text()
    assert (tmp_path / "postgres.env").stat().st_mode & 0o077 == 0
    assert make_secrets.main(["--out", str(tmp_path)]) == 2
    assert (tmp_path / "postgres.env").read_text() == first
    assert make_secrets.main(["--out", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "postgres.env").read_text() != first
    # a file a newer version adds is written beside the kept ones
    kept = (tmp_path / "postgres.env").read_text()
    (tmp_path / "mlflow-reader.env").unlink()
    assert make_secrets.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "mlflow-reader.env").is_file()
    assert (tmp_path / "postgres.env").read_text() == kept


def test_dvc_remote_is_set_per_overlay(rendered: dict[str, list[K8sObject]]) -> None:
    urls = {}
    for overlay in ("k8s/overlays/local", "k8s/overlays/prod"):
        config = by_kind(rendered[overlay], "ConfigMap")["dove-dvc-config"]["data"]["config"]
        assert re.search(r"^\s*remote = storage$", config, re.MULTILINE)
        urls[overlay] = re.search(r"url = (s3://\S+)", config).group(1)
    assert len(set(urls.values())) == 2, urls


def test_pytorchjob_runs_the_ddp_entry_point_with_torchrun(
    rendered: dict[str, list[K8sObject]],
) -> None:
    job = by_kind(rendered["training"], "PyTorchJob")["dove-train-ddp"]["spec"]
    replicas = job["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] >= 1
    for replica in replicas.values():
        spec = replica["template"]["spec"]
        container = next(c for c in spec["containers"] if c["name"] == "pytorch")
        assert container["command"] == ["torchrun"]
        args = container["args"]
        assert args[args.index("--no-python") + 1 :][:2] == ["dove", "train"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == int(job["nprocPerNode"])
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/dev/shm" in mounts
        assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])


def test_every_claim_and_config_map_a_pod_mounts_is_defined(
    rendered: dict[str, list[K8sObject]],
) -> None:
    for overlay in ("k8s/overlays/local", "k8s/overlays/prod"):
        objects = rendered[overlay] + rendered["training"] + rendered["jobs/index-build"]
        claims = set(by_kind(objects, "PersistentVolumeClaim"))
        config_maps = set(by_kind(objects, "ConfigMap"))
        for owner, spec in pod_specs(objects):
            for volume in spec.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims, owner
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in config_maps, owner
            for container in spec["containers"]:
                for source in container.get("envFrom", []):
                    if "configMapRef" in source:
                        assert source["configMapRef"]["name"] in config_maps, owner


def test_serving_mounts_the_index_where_the_bento_looks_for_it(
    rendered: dict[str, list[K8sObject]],
) -> None:
    bentofile = yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text(encoding="utf-8"))
    index_dir = next(e["value"] for e in bentofile["envs"] if e["name"] == "DOVE_INDEX_DIR")
    deployment = by_kind(rendered["k8s/overlays/prod"], "Deployment")["dove-retrieval"]
    mounts = deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    index_mount = next(m for m in mounts if m["name"] == "index")
    assert index_mount["mountPath"] == index_dir and index_mount["readOnly"] is True
    # the sharded build's merge writes the index (tests/unit/test_infra_index_job.py)
    job = by_kind(rendered["jobs/index-build"], "Job")["dove-index-merge"]
    job_container = job["spec"]["template"]["spec"]["containers"][0]
    out = next(a for a in job_container["args"] if a.startswith("--out="))
    assert out.removeprefix("--out=").rsplit("/", 1)[-1] == index_mount["subPath"]


def dove_command_options(name: str) -> set[str] | None:
    """The options ``dove <name>`` accepts; None where the command does not exist (yet)."""
    import typer

    from dove_model.cli import app

    command = typer.main.get_command(app).commands.get(name)
    return None if command is None else {opt for p in command.params for opt in p.opts}


def test_pytorchjob_options_are_those_of_dove_train(rendered: dict[str, list[K8sObject]]) -> None:
    known = dove_command_options("train")
    if known is None:
        pytest.skip("`dove train` is not part of the CLI yet")
    job = by_kind(rendered["training"], "PyTorchJob")["dove-train-ddp"]["spec"]
    for replica in job["pytorchReplicaSpecs"].values():
        args = replica["template"]["spec"]["containers"][0]["args"]
        train_args = args[args.index("train") + 1 :]
        assert {a.split("=", 1)[0] for a in train_args} <= known, known
