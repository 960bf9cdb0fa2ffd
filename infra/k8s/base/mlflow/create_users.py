"""Create the MLflow accounts the cluster uses, as the basic-auth admin (idempotent).

The MLflow server runs MLflow's ``basic-auth`` app: a request without valid credentials gets
401, and an account only changes what it was granted. This script (the Job
``mlflow-create-users``, from the ConfigMap ``dove-mlflow-scripts``) makes sure that

- the pipeline account exists and holds EDIT on the experiment (runs) and MANAGE on the
  registered model (versions, tags, setting and removing aliases) and on the registry lease
  ``<model>.registry-lease`` (dove_model.registry.lease: it must be able to delete a stale
  lease whoever took it): only it and the admin can move ``@champion``;
- the reader account exists (it reads through ``default_permission = READ``: the index build
  downloads ``@champion`` with it and can move nothing);
- the experiment and the registered model exist, created by the admin, so that no other
  account can create them first and own them.

Passwords are (re)set from the Secrets on every run, so rotating a Secret and re-running the
Job rotates the account. Environment:

    MLFLOW_TRACKING_URI                                    the server
    MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD    the admin (Secret dove-mlflow-admin)
    DOVE_PIPELINE_USERNAME / DOVE_PIPELINE_PASSWORD        Secret dove-mlflow-pipeline
    DOVE_READER_USERNAME / DOVE_READER_PASSWORD            Secret dove-mlflow-reader
    DOVE_MODEL_NAME                                        ConfigMap dove-endpoints
    DOVE_EXPERIMENT                                        default: ``dove``
    DOVE_WAIT_SECONDS                                      wait for the server (default 300)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_EXPERIMENT = "dove"
LEASE_SUFFIX = ".registry-lease"  # dove_model.registry.lease.LEASE_SUFFIX
EXPERIMENT_PERMISSION = "EDIT"  # create and log runs
MODEL_PERMISSION = "MANAGE"  # deleting an alias or a version tag needs MANAGE


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass(frozen=True)
class Plan:
    tracking_uri: str
    pipeline: Account
    reader: Account
    model_name: str
    experiment: str


def plan_from_env(env: Mapping[str, str]) -> Plan:
    """What to create, from the environment; a missing variable is one clear error."""
    required = (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "DOVE_PIPELINE_USERNAME",
        "DOVE_PIPELINE_PASSWORD",
        "DOVE_READER_USERNAME",
        "DOVE_READER_PASSWORD",
        "DOVE_MODEL_NAME",
    )
    missing = [name for name in required if not env.get(name)]
    if missing:
        raise SystemExit(f"error: set {', '.join(missing)}")
    pipeline = Account(env["DOVE_PIPELINE_USERNAME"], env["DOVE_PIPELINE_PASSWORD"])
    reader = Account(env["DOVE_READER_USERNAME"], env["DOVE_READER_PASSWORD"])
    admin = env["MLFLOW_TRACKING_USERNAME"]
    if len({admin, pipeline.username, reader.username}) != 3:
        raise SystemExit("error: the admin, pipeline and reader accounts must be different users")
    return Plan(
        tracking_uri=env["MLFLOW_TRACKING_URI"],
        pipeline=pipeline,
        reader=reader,
        model_name=env["DOVE_MODEL_NAME"],
        experiment=env.get("DOVE_EXPERIMENT") or DEFAULT_EXPERIMENT,
    )


def wait_for_server(tracking_uri: str, seconds: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"error: {tracking_uri} did not answer /health in {seconds:.0f} s")
        time.sleep(3)


def ensure_user(auth: Any, account: Account) -> str:
    """Create the user, or reset its password to the Secret's; returns what was done."""
    from mlflow.exceptions import RestException

    try:
        auth.get_user(account.username)
    except RestException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(account.username, account.password)
        return "created"
    auth.update_user_password(account.username, account.password)
    return "password set"


def ensure_experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name)


def ensure_grant(
    auth: Any, username: str, resource_type: str, resource_id: str, permission: str
) -> str:
    """Grant exactly ``permission`` (an existing grant of another level is replaced)."""
    from mlflow.exceptions import RestException

    try:
        auth.grant_user_permission(username, resource_type, resource_id, permission)
    except RestException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(username, resource_type, resource_id)
        auth.grant_user_permission(username, resource_type, resource_id, permission)
    return f"{username}: {permission} on {resource_type} {resource_id}"


def apply(plan: Plan) -> list[str]:
    """Create/update both accounts, the experiment and the model; grant the pipeline."""
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    auth = AuthServiceClient(plan.tracking_uri)
    client = MlflowClient(plan.tracking_uri, plan.tracking_uri)
    done = [
        f"user {plan.pipeline.username}: {ensure_user(auth, plan.pipeline)}",
        f"user {plan.reader.username}: {ensure_user(auth, plan.reader)}",
    ]
    experiment_id = ensure_experiment(client, plan.experiment)
    ensure_registered_model(client, plan.model_name)
    user = plan.pipeline.username
    grants = [
        ("experiment", experiment_id, EXPERIMENT_PERMISSION),
        ("registered_model", plan.model_name, MODEL_PERMISSION),
        ("registered_model", plan.model_name + LEASE_SUFFIX, MODEL_PERMISSION),
    ]
    done += [ensure_grant(auth, user, kind, key, level) for kind, key, level in grants]
    return done


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    plan = plan_from_env(env)
    wait_for_server(plan.tracking_uri, float(env.get("DOVE_WAIT_SECONDS", "300")))
    for line in apply(plan):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
