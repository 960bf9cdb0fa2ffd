"""Write fresh random credentials for the local overlay's secretGenerator.

Run once per machine: ``python infra/k8s/overlays/local/make_secrets.py``. The env files land
in ``secrets/`` (git-ignored, mode 0600). Existing files are kept (a file added by a newer
version of this script is written beside them); ``--force`` replaces them all.
Every credential is its own: the MinIO root account (dove-minio) is used by MinIO and the
bucket Job only; the Job creates the two scoped MinIO users from dove-s3 (the DVC remote) and
dove-s3-mlflow (MLflow's artifact store). MLflow's admin, pipeline and reader accounts are
dove-mlflow-admin / -pipeline / -reader.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

SECRETS_DIR = Path(__file__).resolve().parent / "secrets"


def _s3_key() -> str:
    """A MinIO secret key: hex (safe in a URI), 40 characters (MinIO accepts 8 to 40)."""
    return secrets.token_hex(20)


def generate() -> dict[str, dict[str, str]]:
    """One env mapping per Secret the overlay generates."""
    return {
        "postgres.env": {
            "POSTGRES_USER": "mlflow",
            "POSTGRES_PASSWORD": secrets.token_hex(24),  # hex: safe inside a PostgreSQL URI
            "POSTGRES_DB": "mlflow",
        },
        "minio.env": {
            "MINIO_ROOT_USER": f"root-{secrets.token_hex(4)}",
            "MINIO_ROOT_PASSWORD": _s3_key(),
        },
        "s3.env": {"AWS_ACCESS_KEY_ID": "dove-dvc", "AWS_SECRET_ACCESS_KEY": _s3_key()},
        "s3-mlflow.env": {"AWS_ACCESS_KEY_ID": "dove-mlflow", "AWS_SECRET_ACCESS_KEY": _s3_key()},
        "mlflow-admin.env": {
            "MLFLOW_AUTH_ADMIN_USERNAME": "dove-admin",
            "MLFLOW_AUTH_ADMIN_PASSWORD": secrets.token_urlsafe(24),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        },
        "mlflow-pipeline.env": {
            "MLFLOW_TRACKING_USERNAME": "dove-pipeline",
            "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(24),
        },
        "mlflow-reader.env": {
            "MLFLOW_TRACKING_USERNAME": "dove-reader",
            "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(24),
        },
        "serving.env": {"DOVE_API_KEY": secrets.token_urlsafe(32)},
    }


def write_private(path: Path, values: dict[str, str]) -> None:
    """Write ``KEY=value`` lines readable by the owner only, via temp file + rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in values.items())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SECRETS_DIR, help="target folder")
    parser.add_argument("--force", action="store_true", help="replace existing env files")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    credentials = generate()
    missing = {n: v for n, v in credentials.items() if args.force or not (args.out / n).exists()}
    if not missing:
        names = ", ".join(credentials)
        print(f"error: {args.out}: {names} exist (use --force)", file=sys.stderr)
        return 2
    for name, values in missing.items():
        write_private(args.out / name, values)
        print(f"wrote {args.out / name}")
    kept = sorted(set(credentials) - set(missing))
    if kept:
        print(f"kept {', '.join(kept)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
