"""The sharded index build on the cluster (infra/jobs/index-build), validated offline.

An Indexed Job encodes shard ``JOB_COMPLETION_INDEX`` of N per pod onto the shared index
volume; a second Job, created suspended and started once the first is Complete, merges the
N shards into the folder the service mounts. Nothing here reaches a cluster: the
kustomization is rendered with ``kubectl kustomize`` (infra/manifests.py).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from infra import manifests
from infra.manifests import build, validate_object
from infra.security import check_cluster

K8sObject = dict[str, Any]
JOBS = "jobs/index-build"
SHARD_ARG = re.compile(r"^--shard=\$\(JOB_COMPLETION_INDEX\)/(\d+)$")
OUT_ARG = re.compile(r"^--out=(/.+)/shard-\$\(JOB_COMPLETION_INDEX\)-of-(\d+)$")

pytestmark = pytest.mark.skipif(
    manifests.find_kubectl() is None, reason="kubectl is not installed (apt-get install kubectl)"
)


@pytest.fixture(scope="module")
def infra_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return manifests.with_throwaway_secrets(manifests.INFRA_DIR, tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="module")
def objects(infra_copy: Path) -> list[K8sObject]:
    return build(infra_copy / JOBS)


def jobs(objects: list[K8sObject]) -> dict[str, K8sObject]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Job"}


def container(job: K8sObject) -> K8sObject:
    return job["spec"]["template"]["spec"]["containers"][0]


def dove_options(*path: str) -> set[str]:
    """The options ``dove <path...>`` accepts (the real CLI, so a renamed flag fails here)."""
    import typer

    from dove_model.cli import app

    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {opt for p in command.params for opt in p.opts}


def shard_layout(job: K8sObject) -> tuple[int, str]:
    """(N, shard root) from the encode Job's args; asserts they agree with each other."""
    args = container(job)["args"]
    shard = [m for a in args if (m := SHARD_ARG.match(a))]
    out = [m for a in args if (m := OUT_ARG.match(a))]
    assert len(shard) == 1 and len(out) == 1, args
    count = int(shard[0][1])
    assert int(out[0][2]) == count, args
    return count, out[0][1]


def test_encode_is_an_indexed_job_with_one_pod_per_shard(objects: list[K8sObject]) -> None:
    job = jobs(objects)["dove-index-build"]
    spec = job["spec"]
    count, _ = shard_layout(job)
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == count >= 2
    assert container(job)["command"] == ["dove", "index", "build"]
    args = container(job)["args"]
    assert {a.split("=", 1)[0] for a in args} <= dove_options("index", "build")
    # the pod index reaches --shard through Kubernetes' $(VAR) expansion, which only
    # expands variables of the container's environment: the Job controller sets it there.
    assert any("$(JOB_COMPLETION_INDEX)" in a for a in args)


def test_every_shard_pod_encodes_with_the_champion_it_downloaded(
    objects: list[K8sObject],
) -> None:
    job = jobs(objects)["dove-index-build"]
    spec = job["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    model_arg = next(a for a in container(job)["args"] if a.startswith("--model-dir="))
    model_dir = model_arg.removeprefix("--model-dir=")
    assert "download_champion" in init["args"][0] and f'"{model_dir}"' in init["args"][0]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert model_dir.startswith(mounts["model"] + "/")
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["model"]


def test_merge_lists_all_n_shards_and_writes_the_served_index(objects: list[K8sObject]) -> None:
    found = jobs(objects)
    count, root = shard_layout(found["dove-index-build"])
    merge = found["dove-index-merge"]
    assert container(merge)["command"] == ["dove", "index", "merge"]
    args = container(merge)["args"]
    shards = [a for a in args if not a.startswith("-")]
    assert shards == [f"{root}/shard-{i}-of-{count}" for i in range(count)]
    options = [a for a in args if a.startswith("-")]
    assert {a.split("=", 1)[0] for a in options} <= dove_options("index", "merge")
    assert "--out=/index/current" in options
    # both Jobs see the same volume at the same place: the merge reads what the pods wrote
    for job in (found["dove-index-build"], merge):
        mounts = {m["name"]: m["mountPath"] for m in container(job)["volumeMounts"]}
        volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
        assert mounts["index"] == "/index" and root.startswith("/index/")
        assert volumes["index"]["persistentVolumeClaim"]["claimName"] == "dove-index"


def test_merge_starts_only_when_the_operator_releases_it(objects: list[K8sObject]) -> None:
    assert jobs(objects)["dove-index-merge"]["spec"]["suspend"] is True
    guide = (manifests.INFRA_DIR.parent / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "kubectl -n dove-ops wait --for=condition=complete job/dove-index-build" in guide
    assert "patch job dove-index-merge" in guide


def test_a_mismatched_shard_count_is_caught(objects: list[K8sObject]) -> None:
    broken = copy.deepcopy(jobs(objects)["dove-index-build"])
    count, _ = shard_layout(broken)
    args = container(broken)["args"]
    args[:] = [a.replace(f"/{count}", f"/{count + 1}") if a.startswith("--shard=") else a
               for a in args]  # fmt: skip
    with pytest.raises(AssertionError):
        shard_layout(broken)


def test_the_jobs_pass_the_schema_and_the_security_checks(infra_copy: Path) -> None:
    objects = build(infra_copy / JOBS)
    for obj in objects:
        validate_object(obj)
    for overlay in ("k8s/overlays/local", "k8s/overlays/prod"):
        cluster = build(infra_copy / overlay) + objects
        assert check_cluster(cluster) == []
        # without its own (allow-nothing) policy the merge pod is reported
        stripped = [o for o in cluster if o["kind"] != "NetworkPolicy"
                    or o["metadata"]["name"] != "dove-index-merge"]  # fmt: skip
        assert any("Job/dove-index-merge" in p for p in check_cluster(stripped))
