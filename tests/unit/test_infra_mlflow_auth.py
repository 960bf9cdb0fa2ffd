"""MLflow's basic-auth app as the cluster runs it: a real `mlflow server` on 127.0.0.1.

The server gets the cluster's ``basic_auth.ini`` (only the user-store URI is swapped for a
sqlite file: there is no PostgreSQL here) and the Job's ``create_users.py`` creates the
accounts. Then: no credentials -> 401; the reader reads but cannot move ``@champion``; the
pipeline account registers a version and moves it.
"""

from __future__ import annotations

import configparser
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from infra import manifests

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.filterwarnings("ignore")]
DENIED = r"Permission denied|PERMISSION_DENIED|403"

MLFLOW_DIR = manifests.INFRA_DIR / "k8s" / "base" / "mlflow"
MODEL = "dove-rs-retrieval"
ADMIN = ("dove-admin", "admin-" + "x" * 20)
PIPELINE = ("dove-pipeline", "pipeline-" + "p" * 20)
READER = ("dove-reader", "reader-" + "r" * 20)


def load_create_users():
    """The Job's script (in the pod it is mounted from a ConfigMap and run as a file)."""
    from infra.k8s.base.mlflow import create_users

    return create_users


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, start_mlflow_server: Callable[..., Any]
) -> Iterator[str]:
    home = tmp_path_factory.mktemp("mlflow-auth")
    ini = configparser.ConfigParser()
    ini.read(MLFLOW_DIR / "basic_auth.ini")
    assert ini["mlflow"]["database_uri"].startswith("postgresql://")
    ini["mlflow"]["database_uri"] = f"sqlite:///{home / 'auth.db'}"
    with (home / "basic_auth.ini").open("w") as handle:
        ini.write(handle)
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(home / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
    }
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    with start_mlflow_server(home, args=("--app-name", "basic-auth"), env=env) as url:
        yield url


def job_env(url: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": ADMIN[0],
        "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
        "DOVE_PIPELINE_USERNAME": PIPELINE[0],
        "DOVE_PIPELINE_PASSWORD": PIPELINE[1],
        "DOVE_READER_USERNAME": READER[0],
        "DOVE_READER_PASSWORD": READER[1],
        "DOVE_MODEL_NAME": MODEL,
        "DOVE_WAIT_SECONDS": "30",
    }


@contextlib.contextmanager
def as_user(account: tuple[str, str] | None) -> Iterator[None]:
    """MLflow clients read the credentials from the environment, as the pods do."""
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.pop(name, None)
    if account is not None:
        os.environ.update(dict(zip(names, account, strict=True)))
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


@pytest.fixture(scope="module")
def accounts(server: str) -> str:
    create_users = load_create_users()
    with as_user(ADMIN):  # in the pod the admin credentials are the container's environment
        assert create_users.main(job_env(server)) == 0
    return server


def test_without_credentials_every_api_call_is_refused(accounts: str) -> None:
    response = httpx.get(
        f"{accounts}/api/2.0/mlflow/registered-models/get", params={"name": MODEL}, timeout=10
    )
    assert response.status_code == 401
    wrong = httpx.get(
        f"{accounts}/api/2.0/mlflow/registered-models/get",
        params={"name": MODEL},
        auth=(PIPELINE[0], "not-the-password"),
        timeout=10,
    )
    assert wrong.status_code == 401


def _register_version(url: str) -> str:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(url, url)
    experiment = client.get_experiment_by_name("dove")
    run = client.create_run(experiment.experiment_id)
    client.log_metric(run.info.run_id, "r1", 0.5)
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id)
    assert mlflow.get_tracking_uri()  # the client module is importable in the pods' image
    return version.version


def test_only_the_pipeline_account_moves_champion(accounts: str) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with as_user(PIPELINE):
        version = _register_version(accounts)
        client = MlflowClient(accounts, accounts)
        client.set_registered_model_alias(MODEL, "champion", version)
        client.set_registered_model_alias(MODEL, "challenger", version)
        client.delete_registered_model_alias(MODEL, "challenger")  # rollback removes aliases
    with as_user(READER):
        client = MlflowClient(accounts, accounts)
        assert client.get_model_version_by_alias(MODEL, "champion").version == version
        with pytest.raises(MlflowException, match=DENIED):
            client.set_registered_model_alias(MODEL, "champion", "1")
        with pytest.raises(MlflowException, match=DENIED):
            client.delete_registered_model_alias(MODEL, "champion")
        with pytest.raises(MlflowException, match=DENIED):
            client.create_model_version(MODEL, "mlflow-artifacts:/elsewhere/model")
    with as_user(None):
        client = MlflowClient(accounts, accounts)
        with pytest.raises(MlflowException, match=r"401|Unauthorized|credentials"):
            client.set_registered_model_alias(MODEL, "champion", "1")
    with as_user(READER):
        alias = MlflowClient(accounts, accounts).get_model_version_by_alias(MODEL, "champion")
        assert alias.version == version


def test_the_pipeline_can_break_a_stale_registry_lease_the_reader_cannot(accounts: str) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    lease = MODEL + load_create_users().LEASE_SUFFIX
    with as_user(ADMIN):  # e.g. an operator's `dove promote` that died holding the lease
        MlflowClient(accounts, accounts).create_registered_model(lease)
    with as_user(READER), pytest.raises(MlflowException, match=DENIED):
        MlflowClient(accounts, accounts).delete_registered_model(lease)
    with as_user(PIPELINE):
        MlflowClient(accounts, accounts).delete_registered_model(lease)


def test_the_lease_name_is_the_registrys() -> None:
    lease = pytest.importorskip("dove_model.registry.lease")
    assert load_create_users().LEASE_SUFFIX == lease.LEASE_SUFFIX


def test_the_job_is_idempotent_and_resets_passwords(accounts: str) -> None:
    create_users = load_create_users()
    env = job_env(accounts)
    env["DOVE_READER_PASSWORD"] = "rotated-" + "q" * 20
    with as_user(ADMIN):
        assert create_users.main(env) == 0
    old = httpx.get(f"{accounts}/api/2.0/mlflow/experiments/search", auth=READER, timeout=10)
    assert old.status_code == 401
    new = httpx.get(
        f"{accounts}/api/2.0/mlflow/experiments/search",
        params={"max_results": 10},
        auth=(READER[0], env["DOVE_READER_PASSWORD"]),
        timeout=10,
    )
    assert new.status_code == 200, new.text
    with as_user(ADMIN):
        assert create_users.main(job_env(accounts)) == 0  # back to the fixture's password


def test_the_job_refuses_a_missing_secret_or_a_shared_account() -> None:
    create_users = load_create_users()
    env = job_env("http://127.0.0.1:1")
    del env["DOVE_READER_PASSWORD"]
    with pytest.raises(SystemExit, match="DOVE_READER_PASSWORD"):
        create_users.plan_from_env(env)
    env = job_env("http://127.0.0.1:1")
    env["DOVE_READER_USERNAME"] = env["DOVE_PIPELINE_USERNAME"]
    with pytest.raises(SystemExit, match="different users"):
        create_users.plan_from_env(env)
