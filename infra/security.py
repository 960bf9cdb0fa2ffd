"""Security checks on one environment's rendered objects (overlay + DDP job + index job).

Run by ``python -m infra.manifests`` for each overlay, after the schema checks:

- every namespace is default-deny (ingress and egress) and every workload is selected by an
  allow policy of its own (infra/k8s/base/network);
- MLflow runs its basic-auth app, and every pod the policies let reach MLflow reads
  ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` from a Secret;
- the MinIO root account (Secret ``dove-minio``) is seen by MinIO and the bucket Job only,
  and each MinIO policy grants one bucket (listing it, objects in it), nothing broader.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from infra.netpol import Pod, Policies, matches, workload_pods

K8sObject = dict[str, Any]
MINIO_ROOT_SECRET = "dove-minio"
ROOT_ACCOUNT_HOLDERS = {"StatefulSet/minio", "Job/minio-create-buckets"}
MINIO_POLICIES_CONFIG_MAP = "dove-minio-policies"
MLFLOW_AUTH_APP = "--app-name=basic-auth"
MLFLOW_ACCOUNT_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
# Secrets that hold exactly MLFLOW_ACCOUNT_ENV (the admin's has MLFLOW_AUTH_ADMIN_* instead)
MLFLOW_ACCOUNT_SECRETS = frozenset({"dove-mlflow-pipeline", "dove-mlflow-reader"})
BUCKET_ACTIONS = frozenset(
    {"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"}
)
OBJECT_ACTIONS = frozenset(
    {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    }
)


def containers(objects: list[K8sObject]) -> Iterator[tuple[str, K8sObject]]:
    """(owner, container) for every container of every workload, init containers included."""
    for obj in objects:
        owner = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in {"Deployment", "StatefulSet", "Job"}:
            specs = [obj["spec"]["template"]["spec"]]
        elif obj["kind"] == "PyTorchJob":
            specs = [r["template"]["spec"] for r in obj["spec"]["pytorchReplicaSpecs"].values()]
        else:
            continue
        for spec in specs:
            for container in spec.get("initContainers", []) + spec["containers"]:
                yield owner, container


def _env_from_secrets(container: K8sObject) -> set[str]:
    return {s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s}


def secret_names(container: K8sObject) -> set[str]:
    names = _env_from_secrets(container)
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            names.add(ref["name"])
    return names


def granted_buckets(policy: dict[str, Any]) -> set[str]:
    """The buckets an S3 policy reaches; ValueError for anything broader than listing a
    bucket and reading/writing/deleting its objects."""
    buckets = set()
    for statement in policy.get("Statement", []):
        if statement.get("Effect") != "Allow" or "NotAction" in statement:
            raise ValueError(f"only plain Allow statements: {statement}")
        actions = set(statement["Action"])
        for resource in statement["Resource"]:
            if not resource.startswith("arn:aws:s3:::"):
                raise ValueError(f"not an S3 resource: {resource}")
            bucket, _, rest = resource.removeprefix("arn:aws:s3:::").partition("/")
            if not bucket or "*" in bucket or "?" in bucket:
                raise ValueError(f"not one bucket: {resource}")
            allowed = OBJECT_ACTIONS if rest else BUCKET_ACTIONS
            if rest not in ("", "*") or not actions <= allowed:
                raise ValueError(f"{resource}: {sorted(actions - allowed) or rest} is too broad")
            buckets.add(bucket)
    if not buckets:
        raise ValueError("grants nothing")
    return buckets


def _namespace_problems(objects: list[K8sObject], policies: Policies) -> list[str]:
    problems = []
    namespaces = {o["metadata"].get("namespace") for o in objects} - {None}
    for namespace in sorted(namespaces):
        default_deny = any(
            p["metadata"].get("namespace") == namespace
            and p["spec"].get("podSelector") == {}
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
            for p in policies.items
        )
        if not default_deny:
            problems.append(f"namespace {namespace}: no default-deny NetworkPolicy")
    for workload in workload_pods(objects):
        own = [
            p
            for p in policies.items
            if p["metadata"].get("namespace") == workload.namespace
            and p["spec"].get("podSelector")
            and matches(p["spec"]["podSelector"], workload.labels)
        ]
        if not own:
            problems.append(f"{workload}: no NetworkPolicy of its own allows what it needs")
    return problems


def _mlflow_clients_without_account(
    objects: list[K8sObject], policies: Policies, server: Pod, port: int
) -> list[str]:
    problems = []
    reaching = {p.name for p in workload_pods(objects) if policies.allowed(p, server, port)}
    for client, spec in containers(objects):
        if not any(name == client or name.startswith(client + "/") for name in reaching):
            continue
        env = spec.get("env", [])
        from_secret = {e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
        if _env_from_secrets(spec) & MLFLOW_ACCOUNT_SECRETS:
            from_secret |= set(MLFLOW_ACCOUNT_ENV)
        missing = sorted(set(MLFLOW_ACCOUNT_ENV) - from_secret)
        if missing:
            problems.append(f"{client}: reaches MLflow without {missing} from a Secret")
    return problems


def _mlflow_problems(objects: list[K8sObject], policies: Policies) -> list[str]:
    problems = []
    servers = [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and o["spec"]["template"]["spec"]["containers"][0].get("command", [])[:2]
        == ["mlflow", "server"]
    ]
    if not servers:
        return ["no MLflow server Deployment"]
    for deployment in servers:
        owner = f"Deployment/{deployment['metadata']['name']}"
        template = deployment["spec"]["template"]
        container = template["spec"]["containers"][0]
        if MLFLOW_AUTH_APP not in container.get("args", []):
            problems.append(f"{owner}: MLflow runs without {MLFLOW_AUTH_APP}")
        server = Pod(deployment["metadata"]["namespace"], template["metadata"]["labels"], owner)
        for port in (p["containerPort"] for p in container.get("ports", [])):
            problems += _mlflow_clients_without_account(objects, policies, server, port)
    return problems


def _minio_problems(objects: list[K8sObject]) -> list[str]:
    problems = []
    holders = {o for o, c in containers(objects) if MINIO_ROOT_SECRET in secret_names(c)}
    for owner in sorted(holders - ROOT_ACCOUNT_HOLDERS):
        problems.append(f"{owner}: uses the MinIO root account (Secret {MINIO_ROOT_SECRET})")
    maps = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == MINIO_POLICIES_CONFIG_MAP
    ]
    if not maps:
        return [*problems, f"no ConfigMap {MINIO_POLICIES_CONFIG_MAP}"]
    for name, text in maps[0]["data"].items():
        try:
            buckets = granted_buckets(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"MinIO policy {name}: {exc}")
            continue
        if len(buckets) != 1:
            problems.append(f"MinIO policy {name}: grants {sorted(buckets)}, one bucket expected")
    return problems


def check_cluster(objects: list[K8sObject]) -> list[str]:
    """Every problem found in one environment's objects; empty when there is none."""
    policies = Policies.of(objects)
    return [
        *_namespace_problems(objects, policies),
        *_mlflow_problems(objects, policies),
        *_minio_problems(objects),
    ]
