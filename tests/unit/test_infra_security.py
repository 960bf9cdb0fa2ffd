"""The cluster's security settings, on the rendered manifests (no cluster needed).

- NetworkPolicies: the dove-ops namespace is default-deny, and the connection matrix they
  allow (evaluated by infra/netpol.py) is exactly what each component needs;
- MLflow runs its basic-auth app, and every MLflow client reads its account from a Secret;
- MinIO: the root account stays with MinIO and the bucket Job; MLflow and the pipeline use
  users whose policies grant one bucket each.
"""

from __future__ import annotations

import configparser
import copy
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from dove_model.config import load_params
from dove_model.pipeline.platform import Placement, executor_config
from infra import manifests, security
from infra.manifests import build
from infra.netpol import Pod, Policies, matches, workload_pods
from infra.security import check_cluster, granted_buckets

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "dove-ops"
OVERLAYS = ("k8s/overlays/local", "k8s/overlays/prod")
K8sObject = dict[str, Any]

pytestmark = pytest.mark.skipif(
    manifests.find_kubectl() is None, reason="kubectl is not installed (apt-get install kubectl)"
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[K8sObject]]:
    infra_copy = manifests.with_throwaway_secrets(
        manifests.INFRA_DIR, tmp_path_factory.mktemp("security")
    )
    return {name: build(infra_copy / name) for name in manifests.KUSTOMIZATIONS}


def cluster(rendered: dict[str, list[K8sObject]], overlay: str) -> list[K8sObject]:
    """What one environment applies to dove-ops: the overlay, the DDP job, the index job."""
    return rendered[overlay] + rendered["training"] + rendered["jobs/index-build"]


def by_kind(objects: list[K8sObject], kind: str) -> dict[str, K8sObject]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod(objects: list[K8sObject], app: str) -> Pod:
    found = [p for p in workload_pods(objects) if p.labels.get("app.kubernetes.io/name") == app]
    assert found, app
    return found[0]


def containers(objects: list[K8sObject]) -> list[tuple[str, K8sObject]]:
    return list(security.containers(objects))


# Pods outside dove-ops, labelled as their installations label them.
INGRESS = Pod(
    "ingress-nginx",
    {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
    "ingress-nginx controller",
)
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, "prometheus")
KFP_TASK = Pod(
    "kubeflow",
    {**Placement().pod_labels, "pipelines.kubeflow.org/v2_component": "true"},
    "KFP task",
)
KFP_OTHER = Pod("kubeflow", {"app": "ml-pipeline-ui"}, "another kubeflow pod")
AIRFLOW_TASK = Pod(
    "airflow", {"tier": "airflow", "component": "worker", "release": "airflow"}, "Airflow task"
)
AIRFLOW_SCHEDULER = Pod(
    "airflow", {"tier": "airflow", "component": "scheduler", "release": "airflow"}, "scheduler"
)
STRANGER = Pod("default", {"app": "anything"}, "a pod in default")
IMPOSTOR = Pod("default", dict(Placement().pod_labels), "a pod wearing the pipeline label")
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"}, "kube-dns")

# (source, destination, port) by app name (dove-ops) or Pod (elsewhere)
NEEDED = [
    (INGRESS, "dove-retrieval", 3000),
    (PROMETHEUS, "dove-retrieval", 3000),
    ("mlflow", "postgres", 5432),
    ("mlflow", "minio", 9000),
    ("minio-create-buckets", "minio", 9000),
    ("mlflow-create-users", "mlflow", 5000),
    ("dove-index-build", "mlflow", 5000),
    ("dove-train", "mlflow", 5000),
    ("dove-train", "minio", 9000),
    ("dove-train", "dove-train", 29500),  # torchrun rendezvous
    ("dove-train", "dove-train", 41000),  # NCCL picks ports
    (KFP_TASK, "mlflow", 5000),
    (KFP_TASK, "minio", 9000),
    (AIRFLOW_TASK, "mlflow", 5000),
    (AIRFLOW_TASK, "minio", 9000),
    (AIRFLOW_SCHEDULER, "postgres", 5432),
]
REFUSED = [
    *((STRANGER, app, port) for app, port in [("dove-retrieval", 3000), ("mlflow", 5000)]),
    *((STRANGER, app, port) for app, port in [("minio", 9000), ("postgres", 5432)]),
    (IMPOSTOR, "mlflow", 5000),  # the label alone, from another namespace
    (IMPOSTOR, "minio", 9000),
    (KFP_OTHER, "mlflow", 5000),
    (KFP_TASK, "postgres", 5432),
    (KFP_TASK, "dove-retrieval", 3000),
    (AIRFLOW_TASK, "postgres", 5432),
    (INGRESS, "mlflow", 5000),  # MLflow is not public
    (INGRESS, "minio", 9001),
    (PROMETHEUS, "mlflow", 5000),
    ("dove-retrieval", "mlflow", 5000),  # the service calls nothing
    ("dove-retrieval", "minio", 9000),
    ("dove-retrieval", "postgres", 5432),
    ("dove-retrieval", STRANGER, 443),
    ("dove-index-build", "minio", 9000),  # it reads the champion through MLflow
    ("dove-index-build", "postgres", 5432),
    ("mlflow", "dove-retrieval", 3000),
    ("mlflow", "minio", 9001),
    ("mlflow", STRANGER, 443),
    ("minio-create-buckets", "mlflow", 5000),
    ("mlflow-create-users", "minio", 9000),
    ("dove-train", "postgres", 5432),
    ("postgres", STRANGER, 443),
    ("minio", STRANGER, 443),
]


def resolve(objects: list[K8sObject], end: Pod | str) -> Pod:
    return end if isinstance(end, Pod) else pod(objects, end)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespace_is_default_deny_both_ways(
    rendered: dict[str, list[K8sObject]], overlay: str
) -> None:
    objects = cluster(rendered, overlay)
    namespaces = {o["metadata"].get("namespace") for o in objects} - {None}
    policies = by_kind(objects, "NetworkPolicy")
    for namespace in namespaces | {NAMESPACE}:
        deny = [
            p
            for p in policies.values()
            if p["metadata"]["namespace"] == namespace
            and p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert deny, f"{namespace}: no default-deny NetworkPolicy"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_isolated_and_has_its_own_allow_policy(
    rendered: dict[str, list[K8sObject]], overlay: str
) -> None:
    objects = cluster(rendered, overlay)
    policies = Policies.of(objects)
    workloads = workload_pods(objects)
    assert {p.labels["app.kubernetes.io/name"] for p in workloads} >= {
        "dove-retrieval", "mlflow", "postgres", "minio", "minio-create-buckets",
        "mlflow-create-users", "dove-index-build", "dove-train",
    }  # fmt: skip
    for workload in workloads:
        for direction in ("Ingress", "Egress"):
            assert policies.selecting(workload, direction), f"{workload}: not isolated"
        own = [
            p
            for p in policies.items
            if p["spec"]["podSelector"] and matches(p["spec"]["podSelector"], workload.labels)
        ]
        assert own, f"{workload}: no allow policy selects it"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("source", "destination", "port"), NEEDED, ids=str)
def test_each_connection_a_component_needs_is_allowed(
    rendered: dict[str, list[K8sObject]], overlay: str, source: Any, destination: Any, port: int
) -> None:
    objects = cluster(rendered, overlay)
    src, dst = resolve(objects, source), resolve(objects, destination)
    assert Policies.of(objects).allowed(src, dst, port), f"{src} -> {dst}:{port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize(("source", "destination", "port"), REFUSED, ids=str)
def test_every_other_connection_is_refused(
    rendered: dict[str, list[K8sObject]], overlay: str, source: Any, destination: Any, port: int
) -> None:
    objects = cluster(rendered, overlay)
    src, dst = resolve(objects, source), resolve(objects, destination)
    assert not Policies.of(objects).allowed(src, dst, port), f"{src} -> {dst}:{port}"


def test_every_pod_resolves_names_and_nothing_else_by_default(
    rendered: dict[str, list[K8sObject]],
) -> None:
    objects = cluster(rendered, "k8s/overlays/prod")
    policies = Policies.of(objects)
    for workload in workload_pods(objects):
        assert policies.allowed(workload, KUBE_DNS, 53, "UDP"), workload
        assert policies.allowed(workload, KUBE_DNS, 53, "TCP"), workload
        assert not policies.allowed(workload, KUBE_DNS, 8080), workload


def test_policy_ports_are_ports_the_pods_listen_on(rendered: dict[str, list[K8sObject]]) -> None:
    """A renamed or moved container port must not leave a rule pointing at nothing."""
    objects = cluster(rendered, "k8s/overlays/prod")
    listening: dict[str, set[int]] = {}
    for obj in objects:
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            app = obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            listening[app] = {
                p["containerPort"]
                for c in obj["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
    for policy in by_kind(objects, "NetworkPolicy").values():
        spec = policy["spec"]
        for rule in spec.get("ingress") or []:
            for entry in rule.get("ports") or []:
                assert isinstance(entry["port"], int), policy["metadata"]["name"]
                for app in listening:
                    if not matches(spec["podSelector"], {"app.kubernetes.io/name": app}):
                        continue
                    assert entry["port"] in listening[app], (policy["metadata"]["name"], app)
        for rule in spec.get("egress") or []:
            for peer in rule.get("to") or []:
                selector = peer.get("podSelector")
                if selector is None or "namespaceSelector" in peer:
                    continue
                for app, ports in listening.items():
                    if matches(selector, {"app.kubernetes.io/name": app}):
                        for entry in rule.get("ports") or []:
                            assert entry["port"] in ports, (policy["metadata"]["name"], app)


def test_kfp_tasks_carry_the_label_the_policies_admit(rendered: dict[str, list[K8sObject]]) -> None:
    objects = cluster(rendered, "k8s/overlays/prod")
    policies = Policies.of(objects)
    config = executor_config("train", Placement())
    task = Pod("kubeflow", config["podMetadata"]["labels"], "KFP train task")
    assert policies.allowed(task, pod(objects, "mlflow"), 5000)
    assert policies.allowed(task, pod(objects, "minio"), 9000)


# ----------------------------------------------------------------------------- MLflow auth
def env_sources(container: K8sObject, secrets: dict[str, K8sObject]) -> dict[str, str]:
    """Environment variable -> where it comes from ('secret:NAME', 'configmap', 'literal')."""
    sources: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            for key in secrets.get(name, {}).get("data", {}):
                sources[key] = f"secret:{name}"
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        sources[entry["name"]] = f"secret:{ref['name']}" if ref else "literal"
    return sources


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_runs_the_basic_auth_app_with_its_config_and_admin_from_secrets(
    rendered: dict[str, list[K8sObject]], overlay: str
) -> None:
    objects = rendered[overlay]
    deployment = by_kind(objects, "Deployment")["mlflow"]["spec"]["template"]["spec"]
    container = deployment["containers"][0]
    assert container["command"] == ["mlflow", "server"]
    assert "--app-name=basic-auth" in container["args"]
    local = by_kind(rendered["k8s/overlays/local"], "Secret")
    sources = env_sources(container, local)
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        assert sources[name] == "secret:dove-mlflow-admin", name
    assert sources["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "secret:dove-mlflow-admin"
    for name in ("PGUSER", "PGPASSWORD", "PGDATABASE"):
        assert sources[name] == "secret:dove-postgres", name
    env = {e["name"]: e.get("value") for e in container["env"]}
    config_dir, config_file = env["MLFLOW_AUTH_CONFIG_PATH"].rsplit("/", 1)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == config_dir)
    volume = next(v for v in deployment["volumes"] if v["name"] == mount["name"])
    config_map = by_kind(objects, "ConfigMap")[volume["configMap"]["name"]]
    assert config_file in config_map["data"]


def test_the_auth_config_is_what_mlflow_reads_and_holds_no_credential(
    rendered: dict[str, list[K8sObject]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = by_kind(rendered["k8s/overlays/prod"], "ConfigMap")["dove-mlflow-auth"]["data"][
        "basic_auth.ini"
    ]
    ini = configparser.ConfigParser()
    ini.read_string(text)
    section = ini["mlflow"]
    assert "admin_password" not in section and "admin_username" not in section
    assert section["database_uri"] == "postgresql://postgres:5432"  # user etc. from PG* env
    assert section["default_permission"] == "READ"
    (tmp_path / "basic_auth.ini").write_text(text)
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(tmp_path / "basic_auth.ini"))
    from mlflow.server.auth.config import read_auth_config

    config = read_auth_config()
    assert config.default_permission == "READ"
    assert config.grant_default_workspace_access is False


def mlflow_clients(objects: list[K8sObject]) -> list[tuple[str, K8sObject]]:
    """Containers whose pods the NetworkPolicies let reach MLflow."""
    policies = Policies.of(objects)
    mlflow = pod(objects, "mlflow")
    reaching = {p.name for p in workload_pods(objects) if policies.allowed(p, mlflow, 5000)}
    return [(owner, c) for owner, c in containers(objects) if any(
        owner == name or name.startswith(owner + "/") for name in reaching
    )]  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_mlflow_client_reads_its_account_from_a_secret(
    rendered: dict[str, list[K8sObject]], overlay: str
) -> None:
    objects = cluster(rendered, overlay)
    secrets = by_kind(rendered["k8s/overlays/local"], "Secret")
    clients = mlflow_clients(objects)
    assert {owner.split("/")[1] for owner, _ in clients} >= {
        "dove-train-ddp", "dove-index-build", "mlflow-create-users",
    }  # fmt: skip
    for owner, container in clients:
        sources = env_sources(container, secrets)
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            assert sources.get(name, "").startswith("secret:"), (owner, name)


def test_who_holds_which_mlflow_account(rendered: dict[str, list[K8sObject]]) -> None:
    objects = cluster(rendered, "k8s/overlays/prod")
    secrets = by_kind(rendered["k8s/overlays/local"], "Secret")
    account = {}
    for owner, container in containers(objects):
        source = env_sources(container, secrets).get("MLFLOW_TRACKING_USERNAME")
        if source:
            account[owner.split("/")[1]] = source
    assert account["dove-index-build"] == "secret:dove-mlflow-reader"  # reads, moves nothing
    assert account["dove-train-ddp"] == "secret:dove-mlflow-pipeline"
    assert account["mlflow-create-users"] == "secret:dove-mlflow-admin"
    admin_users = {
        owner
        for owner, container in containers(objects)
        if "secret:dove-mlflow-admin" in env_sources(container, secrets).values()
    }
    assert admin_users == {"Deployment/mlflow", "Job/mlflow-create-users"}


def test_kfp_tasks_and_airflow_tasks_get_the_pipeline_account() -> None:
    config = executor_config("register", Placement())
    mlflow_env = {
        k["envVar"]: source["secretName"]
        for source in config["secretAsEnv"]
        for k in source["keyToEnv"]
    }
    assert mlflow_env["MLFLOW_TRACKING_USERNAME"] == "dove-mlflow-pipeline"
    assert mlflow_env["MLFLOW_TRACKING_PASSWORD"] == "dove-mlflow-pipeline"
    values = yaml.safe_load(manifests.HELM_VALUES.read_text(encoding="utf-8"))
    names = {s["envName"] for s in values["secret"]}
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= names


def test_the_account_job_gets_everything_its_script_needs(
    rendered: dict[str, list[K8sObject]],
) -> None:
    from infra.k8s.base.mlflow import create_users

    path = Path(create_users.__file__)
    objects = rendered["k8s/overlays/prod"]
    job = by_kind(objects, "Job")["mlflow-create-users"]["spec"]["template"]["spec"]
    container = job["containers"][0]
    endpoints = by_kind(objects, "ConfigMap")["dove-endpoints"]["data"]
    env = {e["name"]: e.get("value") or "from-a-secret" for e in container["env"]}
    env.update(endpoints)
    # distinct user names (in the pod they come from three Secrets)
    env |= {"MLFLOW_TRACKING_USERNAME": "a", "DOVE_PIPELINE_USERNAME": "p"}
    env["DOVE_READER_USERNAME"] = "r"
    plan = create_users.plan_from_env(env)
    params = load_params(REPO_ROOT / "params.yaml")
    assert plan.experiment == params.register_.experiment
    assert plan.model_name == params.register_.model_name
    script = by_kind(objects, "ConfigMap")["dove-mlflow-scripts"]["data"]["create_users.py"]
    assert script == path.read_text(encoding="utf-8")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "scripts")
    assert container["command"] == ["python", f"{mount['mountPath']}/create_users.py"]


def test_local_mlflow_accounts_are_distinct_and_long_enough(
    rendered: dict[str, list[K8sObject]],
) -> None:
    import base64

    secrets = by_kind(rendered["k8s/overlays/local"], "Secret")

    def value(name: str, key: str) -> str:
        return base64.b64decode(secrets[name]["data"][key]).decode()

    users = {
        value("dove-mlflow-admin", "MLFLOW_AUTH_ADMIN_USERNAME"),
        value("dove-mlflow-pipeline", "MLFLOW_TRACKING_USERNAME"),
        value("dove-mlflow-reader", "MLFLOW_TRACKING_USERNAME"),
    }
    assert len(users) == 3
    for name, key in [
        ("dove-mlflow-admin", "MLFLOW_AUTH_ADMIN_PASSWORD"),
        ("dove-mlflow-pipeline", "MLFLOW_TRACKING_PASSWORD"),
        ("dove-mlflow-reader", "MLFLOW_TRACKING_PASSWORD"),
    ]:
        assert len(value(name, key)) >= 12, name  # MLflow refuses shorter passwords


# ---------------------------------------------------------------------------------- MinIO
def minio_policies(objects: list[K8sObject]) -> dict[str, dict[str, Any]]:
    data = by_kind(objects, "ConfigMap")["dove-minio-policies"]["data"]
    return {name.removesuffix(".json"): json.loads(text) for name, text in data.items()}


def bucket_commands(objects: list[K8sObject]) -> list[list[str]]:
    job = by_kind(objects, "Job")["minio-create-buckets"]["spec"]["template"]["spec"]
    script = " ".join(job["containers"][0]["args"])
    return [shlex.split(part) for part in script.split("&&")]


def test_each_scoped_policy_grants_its_own_bucket_only(
    rendered: dict[str, list[K8sObject]],
) -> None:
    policies = minio_policies(rendered["k8s/overlays/prod"])
    assert {name: granted_buckets(p) for name, p in policies.items()} == {
        "dove-mlflow": {"mlflow"},
        "dove-dvc": {"dvc"},
    }


@pytest.mark.parametrize(
    "broaden",
    [
        lambda p: p["Statement"][1]["Resource"].append("arn:aws:s3:::dvc/*"),
        lambda p: p["Statement"][1]["Action"].append("s3:*"),
        lambda p: p["Statement"][0]["Resource"].append("arn:aws:s3:::*"),
        lambda p: p["Statement"][0]["Action"].append("s3:DeleteBucket"),
        lambda p: p["Statement"].append(
            {"Effect": "Allow", "Action": ["admin:*"], "Resource": ["arn:aws:s3:::*"]}
        ),
    ],
)
def test_the_policy_check_rejects_a_broader_grant(
    rendered: dict[str, list[K8sObject]], broaden: Any
) -> None:
    policy = minio_policies(rendered["k8s/overlays/prod"])["dove-mlflow"]
    broaden(policy)
    try:
        buckets = granted_buckets(policy)
    except ValueError:
        return
    assert buckets != {"mlflow"}


def test_the_bucket_job_creates_a_user_per_bucket_from_the_scoped_secrets(
    rendered: dict[str, list[K8sObject]],
) -> None:
    objects = rendered["k8s/overlays/prod"]
    job = by_kind(objects, "Job")["minio-create-buckets"]["spec"]["template"]["spec"]
    container = job["containers"][0]
    secret_of = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "valueFrom" in e
    }
    commands = bucket_commands(objects)
    mb = next(c for c in commands if c[:2] == ["mc", "mb"])
    made = {arg.split("/", 1)[1] for arg in mb if arg.startswith("dove/")}
    # mc admin policy create ALIAS NAME FILE / user add ALIAS USER KEY / policy attach ALIAS
    # NAME --user USER
    created = {c[5]: c[6] for c in commands if c[:4] == ["mc", "admin", "policy", "create"]}
    users = {c[5]: c[6] for c in commands if c[:4] == ["mc", "admin", "user", "add"]}
    attached = {c[5]: c[7] for c in commands if c[:4] == ["mc", "admin", "policy", "attach"]}
    assert {c[4] for c in commands if c[:2] == ["mc", "admin"]} == {"dove"}
    policies = minio_policies(objects)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "policies")
    assert created == {name: f"{mount['mountPath']}/{name}.json" for name in policies}
    assert made == set().union(*(granted_buckets(p) for p in policies.values()))
    assert set(users) == set(attached.values())
    owner = {policy: secret_of[user.strip("$")] for policy, user in attached.items()}
    assert owner == {"dove-mlflow": "dove-s3-mlflow", "dove-dvc": "dove-s3"}
    for user, password in users.items():
        assert secret_of[user.strip("$")] == secret_of[password.strip("$")]


def test_buckets_used_are_the_buckets_granted(rendered: dict[str, list[K8sObject]]) -> None:
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        policies = minio_policies(objects)
        mlflow = by_kind(objects, "Deployment")["mlflow"]["spec"]["template"]["spec"]
        args = mlflow["containers"][0]["args"]
        destination = next(a for a in args if a.startswith("--artifacts-destination="))
        bucket = destination.split("s3://", 1)[1].split("/")[0]
        assert granted_buckets(policies["dove-mlflow"]) == {bucket}
        config = by_kind(objects, "ConfigMap")["dove-dvc-config"]["data"]["config"]
        url = next(line.split("=", 1)[1].strip() for line in config.splitlines() if "url" in line)
        assert granted_buckets(policies["dove-dvc"]) == {url.removeprefix("s3://").split("/")[0]}


def test_the_minio_root_account_stays_with_minio_and_the_bucket_job(
    rendered: dict[str, list[K8sObject]],
) -> None:
    seen = set()
    for name in manifests.KUSTOMIZATIONS:
        secrets = by_kind(rendered["k8s/overlays/local"], "Secret")
        for owner, container in containers(rendered[name]):
            sources = env_sources(container, secrets)
            if "secret:dove-minio" in sources.values():
                seen.add(owner)
                if owner == "Job/minio-create-buckets":
                    # only the mc alias gets them, as separate variables
                    assert {k for k, v in sources.items() if v == "secret:dove-minio"} == {
                        "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
                    }  # fmt: skip
    assert seen == {"StatefulSet/minio", "Job/minio-create-buckets"}
    placement = Placement()
    assert placement.s3_secret != "dove-minio"
    values = yaml.safe_load(manifests.HELM_VALUES.read_text(encoding="utf-8"))
    assert "dove-minio" not in {s["secretName"] for s in values["secret"]}


def test_mlflow_uses_the_mlflow_bucket_user_not_the_pipelines(
    rendered: dict[str, list[K8sObject]],
) -> None:
    secrets = by_kind(rendered["k8s/overlays/local"], "Secret")
    for overlay in OVERLAYS:
        mlflow = by_kind(rendered[overlay], "Deployment")["mlflow"]["spec"]["template"]["spec"]
        sources = env_sources(mlflow["containers"][0], secrets)
        assert sources["AWS_ACCESS_KEY_ID"] == "secret:dove-s3-mlflow"
        assert sources["AWS_SECRET_ACCESS_KEY"] == "secret:dove-s3-mlflow"


def test_local_s3_users_are_not_the_root_account(rendered: dict[str, list[K8sObject]]) -> None:
    import base64

    secrets = by_kind(rendered["k8s/overlays/local"], "Secret")

    def value(name: str, key: str) -> str:
        return base64.b64decode(secrets[name]["data"][key]).decode()

    root = value("dove-minio", "MINIO_ROOT_USER")
    keys = {value("dove-minio", "MINIO_ROOT_PASSWORD")}
    users = {root}
    for name in ("dove-s3", "dove-s3-mlflow"):
        users.add(value(name, "AWS_ACCESS_KEY_ID"))
        secret = value(name, "AWS_SECRET_ACCESS_KEY")
        assert 8 <= len(secret) <= 40, name  # what MinIO accepts for a user's secret key
        keys.add(secret)
    assert len(users) == 3 and len(keys) == 3


# ------------------------------------------------------ the offline check (infra.manifests)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_offline_check_passes_each_environment(
    rendered: dict[str, list[K8sObject]], overlay: str
) -> None:
    assert check_cluster(cluster(rendered, overlay)) == []


def _drop(objects: list[K8sObject], kind: str, name: str) -> list[K8sObject]:
    return [o for o in objects if (o["kind"], o["metadata"]["name"]) != (kind, name)]


def _edit(objects: list[K8sObject], kind: str, name: str, change: Any) -> list[K8sObject]:
    objects = copy.deepcopy(objects)
    change(next(o for o in objects if (o["kind"], o["metadata"]["name"]) == (kind, name)))
    return objects


def _first_container(obj: K8sObject) -> K8sObject:
    return obj["spec"]["template"]["spec"]["containers"][0]


BREAKAGES = {
    "no default-deny": (
        lambda o: _drop(o, "NetworkPolicy", "default-deny"),
        "no default-deny NetworkPolicy",
    ),
    "the service's policy gone": (
        lambda o: _drop(o, "NetworkPolicy", "dove-retrieval"),
        "Deployment/dove-retrieval: no NetworkPolicy of its own",
    ),
    "MLflow without auth": (
        lambda o: _edit(
            o,
            "Deployment",
            "mlflow",
            lambda d: _first_container(d)["args"].remove("--app-name=basic-auth"),
        ),
        "without --app-name=basic-auth",
    ),
    "an MLflow client without an account": (
        lambda o: _edit(o, "Job", "dove-index-build", lambda j: _first_container(j).pop("env")),
        "Job/dove-index-build: reaches MLflow without",
    ),
    "the service with the root account": (
        lambda o: _edit(
            o,
            "Deployment",
            "dove-retrieval",
            lambda d: _first_container(d)["envFrom"].append({"secretRef": {"name": "dove-minio"}}),
        ),
        "Deployment/dove-retrieval: uses the MinIO root account",
    ),
    "a policy for every bucket": (
        lambda o: _edit(
            o,
            "ConfigMap",
            "dove-minio-policies",
            lambda c: c["data"].update(
                {
                    "dove-dvc.json": c["data"]["dove-dvc.json"].replace(
                        "arn:aws:s3:::dvc/*", "arn:aws:s3:::*"
                    )
                }
            ),
        ),
        "MinIO policy dove-dvc.json",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_offline_check_names_each_breakage(
    rendered: dict[str, list[K8sObject]], breakage: str
) -> None:
    mutate, expected = BREAKAGES[breakage]
    problems = check_cluster(mutate(cluster(rendered, "k8s/overlays/prod")))
    assert any(expected in p for p in problems), problems


def test_python_m_infra_manifests_runs_the_security_check(tmp_path: Path) -> None:
    infra_copy = manifests.with_throwaway_secrets(manifests.INFRA_DIR, tmp_path)
    assert list(manifests.check_security(infra_copy)) == list(manifests.ENVIRONMENTS)
    (infra_copy / "k8s" / "base" / "network" / "default-deny.yaml").write_text(
        (infra_copy / "k8s" / "base" / "network" / "default-deny.yaml")
        .read_text()
        .replace('policyTypes: ["Ingress", "Egress"]', 'policyTypes: ["Ingress"]', 1)
    )
    with pytest.raises(manifests.ManifestError, match="no default-deny"):
        list(manifests.check_security(infra_copy))
