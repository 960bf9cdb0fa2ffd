"""Generated accounts, one JSON file each (``username``, ``password``), mode 0600.

A file that exists is kept: a second ``up`` reuses every password. Passwords are hex, so
they need no escaping in a URI, a libpq password file or an ini file.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from dove_model.atomic import atomic_path
from infra.stack.config import DATABASES, LOOPBACK, Layout, StackError


@dataclass(frozen=True)
class Account:
    username: str
    password: str


# name of the credentials file -> the account's user name
ACCOUNTS = {
    "postgres": "dove_admin",  # the cluster's superuser
    **{f"db-{name}": name for name in DATABASES},  # the owner role of each database
    "mlflow": "dove-admin",  # MLflow's basic-auth admin
    "mlflow-pipeline": "dove-pipeline",  # what Airflow's tasks log and register with
    "mlflow-reader": "dove-reader",  # what the service's deploy downloads @champion with
    "airflow": "admin",  # Airflow's simple auth manager (role admin)
}
KEYS = ("airflow_fernet_key", "airflow_jwt_secret", "airflow_api_secret_key", "mlflow_flask")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically with mode 0600 (set before the content is in place)."""
    with atomic_path(path) as tmp:
        os.chmod(tmp, 0o600)
        tmp.write_text(text, encoding="utf-8")


def read_account(path: Path) -> Account:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Account(str(raw["username"]), str(raw["password"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackError(f"{path}: not a credentials file ({exc})") from None


def ensure_account(layout: Layout, name: str) -> Account:
    """The account of ``name``, generated and saved on first use."""
    path = layout.credential(name)
    if path.is_file():
        return read_account(path)
    account = Account(ACCOUNTS[name], secrets.token_hex(24))
    write_private(path, json.dumps(account.__dict__, indent=2) + "\n")
    return account


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def ensure_keys(layout: Layout) -> dict[str, str]:
    """Secrets that are not accounts (Airflow's Fernet and JWT keys, Flask's CSRF key)."""
    path = layout.credentials / "keys.json"
    keys: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    missing = [k for k in KEYS if not keys.get(k)]
    for name in missing:
        keys[name] = _fernet_key() if name == "airflow_fernet_key" else secrets.token_hex(32)
    if missing:
        write_private(path, json.dumps(keys, indent=2) + "\n")
    return keys


def ensure_all(layout: Layout) -> dict[str, Account]:
    """Every account of the stack (created once, then reused)."""
    layout.credentials.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.credentials, 0o700)
    return {name: ensure_account(layout, name) for name in ACCOUNTS}


def write_pgpass(layout: Layout, port: int, accounts: dict[str, Account]) -> Path:
    """libpq's password file: MLflow and Airflow connect with URIs that hold no password."""
    lines = [
        f"{LOOPBACK}:{port}:{db}:{accounts[f'db-{db}'].username}:{accounts[f'db-{db}'].password}"
        for db in DATABASES
    ]
    write_private(layout.pgpass, "\n".join(lines) + "\n")
    return layout.pgpass
