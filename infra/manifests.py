"""Build every kustomization under ``infra/`` and validate each object offline.

Core kinds are checked against the Kubernetes OpenAPI schemas that ship with the
``kubernetes-validate`` package (strict: an unknown field is an error); custom resources
(PyTorchJob) against the JSON schemas vendored in ``infra/schemas/``, whose pod templates
resolve to the same core definitions. The Airflow Helm values are checked against a focused
schema of the chart's values, the ingress-nginx values likewise; then each environment's
security settings (infra/security.py) and the proxy limits against the service's
(infra/proxy.py). Run ``python -m infra.manifests`` before applying.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import referencing
import yaml

from dove_model.errors import DoveError

INFRA_DIR = Path(__file__).resolve().parent
SCHEMAS_DIR = INFRA_DIR / "schemas"
KUBERNETES_VERSION = "1.32"  # the oldest minor we support; kubectl's client is 1.32 too
KUSTOMIZATIONS = ("k8s/overlays/local", "k8s/overlays/prod", "training", "jobs/index-build")
# What one environment applies to its namespace: an overlay plus the jobs applied beside it.
ENVIRONMENTS = {
    "local": ("k8s/overlays/local", "training", "jobs/index-build"),
    "prod": ("k8s/overlays/prod", "training", "jobs/index-build"),
}
# (apiVersion, kind) -> vendored schema file, for kinds the core schemas do not know.
CUSTOM_SCHEMAS = {("kubeflow.org/v1", "PyTorchJob"): "pytorchjob-kubeflow-v1.json"}
HELM_VALUES = INFRA_DIR / "helm" / "airflow" / "values.yaml"
AIRFLOW_VALUES_SCHEMA = "airflow-chart-values.focused.json"
INGRESS_NGINX_VALUES = INFRA_DIR / "helm" / "ingress-nginx" / "values.yaml"
INGRESS_NGINX_VALUES_SCHEMA = "ingress-nginx-values.focused.json"
# Helm values file -> its focused schema in infra/schemas/
HELM_CHARTS = {
    HELM_VALUES: AIRFLOW_VALUES_SCHEMA,
    INGRESS_NGINX_VALUES: INGRESS_NGINX_VALUES_SCHEMA,
}
K8sObject = dict[str, Any]


class ManifestError(DoveError):
    """A kustomization that does not build, or an object its schema rejects."""


@dataclass(frozen=True)
class Checked:
    source: str
    kind: str
    name: str
    schema: str


def find_kubectl() -> str | None:
    found = shutil.which("kubectl") or "/usr/bin/kubectl"
    return found if Path(found).is_file() else None


def kubectl() -> str:
    found = find_kubectl()
    if found is None:
        raise ManifestError("kubectl not found on PATH (apt-get install kubectl)")
    return found


def build(kustomization_dir: Path) -> list[K8sObject]:
    """``kubectl kustomize DIR`` parsed into objects."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(kustomization_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
        raise ManifestError(f"{kustomization_dir}: kustomize: {message}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def _core_definitions(version: str) -> referencing.Resource:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    matches = sorted(root.glob(f"v{version}.*-local-strict"))
    if not matches:
        raise ManifestError(f"kubernetes-validate has no schemas for Kubernetes {version}")
    definitions = json.loads((matches[-1] / "_definitions.json").read_text(encoding="utf-8"))
    return referencing.jsonschema.DRAFT202012.create_resource(definitions)


def _schema_validator(schema_file: str, version: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS_DIR / schema_file).read_text(encoding="utf-8"))
    registry = referencing.Registry().with_resources(
        [
            ("https://kubernetes.io/api/_definitions.json", _core_definitions(version)),
            (schema["$id"], referencing.jsonschema.DRAFT202012.create_resource(schema)),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _validate_custom(obj: K8sObject, schema_file: str, version: str) -> None:
    validator = _schema_validator(schema_file, version)
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        raise ManifestError(_describe(obj, error))


def check_helm_values(
    values_file: Path = HELM_VALUES,
    version: str = KUBERNETES_VERSION,
    schema_file: str = AIRFLOW_VALUES_SCHEMA,
) -> None:
    """Chart values against their focused schema (default: Airflow's; see its description)."""
    values = yaml.safe_load(values_file.read_text(encoding="utf-8"))
    validator = _schema_validator(schema_file, version)
    error = jsonschema.exceptions.best_match(validator.iter_errors(values))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "(root)"
        raise ManifestError(f"{values_file}: {where}: {error.message[:300]}")


def _describe(obj: K8sObject, error: jsonschema.ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path) or "(root)"
    name = obj.get("metadata", {}).get("name", "?")
    return f"{obj.get('kind')}/{name}: {where}: {error.message[:300]}"


def validate_object(obj: K8sObject, version: str = KUBERNETES_VERSION) -> str:
    """Validate one object; return the schema used. Raises ManifestError."""
    custom = CUSTOM_SCHEMAS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if custom:
        _validate_custom(obj, custom, version)
        return f"infra/schemas/{custom}"
    try:
        used = kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise ManifestError(f"{exc.message}: vendor a schema in infra/schemas/") from None
    except kubernetes_validate.ValidationError as exc:
        raise ManifestError(_describe(obj, exc)) from None
    return f"kubernetes {used} (strict)"


def with_throwaway_secrets(infra_dir: Path, work_dir: Path) -> Path:
    """Copy ``infra/`` and generate the local overlay's secret env files in the copy."""
    copy = work_dir / "infra"
    shutil.copytree(infra_dir, copy, ignore=shutil.ignore_patterns("__pycache__", "*.env"))
    script = copy / "k8s" / "overlays" / "local" / "make_secrets.py"
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)
    return copy


def check_all(infra_dir: Path, version: str = KUBERNETES_VERSION) -> Iterator[Checked]:
    """Build each kustomization and validate every object; stops at the first error."""
    for relative in KUSTOMIZATIONS:
        for obj in build(infra_dir / relative):
            schema = validate_object(obj, version)
            yield Checked(relative, obj["kind"], obj["metadata"]["name"], schema)


def check_security(infra_dir: Path) -> Iterator[str]:
    """Each environment's NetworkPolicies, MLflow auth and MinIO accounts (infra/security.py);
    yields the environments checked, raises ManifestError with every problem found."""
    from infra.security import check_cluster

    for environment, parts in ENVIRONMENTS.items():
        objects = [obj for part in parts for obj in build(infra_dir / part)]
        problems = check_cluster(objects)
        if problems:
            raise ManifestError(f"{environment}: " + "; ".join(problems))
        yield environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        infra_copy = with_throwaway_secrets(INFRA_DIR, Path(tmp))
        try:
            for checked in check_all(infra_copy, args.kubernetes_version):
                print(f"ok  {checked.source:<20} {checked.kind}/{checked.name}  [{checked.schema}]")
            for environment in check_security(infra_copy):
                print(f"ok  {environment}: default-deny + allow policies, MLflow auth, MinIO users")
            for values_file, schema_file in HELM_CHARTS.items():
                relative = values_file.relative_to(INFRA_DIR)
                check_helm_values(infra_copy / relative, args.kubernetes_version, schema_file)
                print(f"ok  {relative}  [infra/schemas/{schema_file}]")
            check_proxy_limits()
            print("ok  proxy limits (ingress-nginx, nginx/dove-retrieval.conf) = the service's")
        except ManifestError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
    return 0


def check_proxy_limits() -> None:
    """The proxy configurations against the service's limits (infra/proxy.py)."""
    from infra.proxy import ProxyConfigError, check_all

    try:
        problems = check_all()
    except ProxyConfigError as exc:
        raise ManifestError(str(exc)) from None
    if problems:
        raise ManifestError("; ".join(problems))


if __name__ == "__main__":
    sys.exit(main())
