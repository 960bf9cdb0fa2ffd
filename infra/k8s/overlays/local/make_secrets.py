"""Write fresh random credentials for the local overlay's secretGenerator.

Run once per machine: ``python infra/k8s/overlays/local/make_secrets.py``. The env files land
in ``secrets/`` (git-ignored, mode 0600); existing files are kept unless ``--force``.
Local MinIO is the S3 store, so the S3 keys are the MinIO root credentials.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

SECRETS_DIR = Path(__file__).resolve().parent / "secrets"


def generate() -> dict[str, dict[str, str]]:
    """One env mapping per Secret the overlay generates."""
    s3_user = f"dove-{secrets.token_hex(4)}"
    s3_password = secrets.token_hex(24)  # hex: safe inside a PostgreSQL/S3 URI
    return {
        "postgres.env": {
            "POSTGRES_USER": "mlflow",
            "POSTGRES_PASSWORD": secrets.token_hex(24),
            "POSTGRES_DB": "mlflow",
        },
        "minio.env": {"MINIO_ROOT_USER": s3_user, "MINIO_ROOT_PASSWORD": s3_password},
        "s3.env": {"AWS_ACCESS_KEY_ID": s3_user, "AWS_SECRET_ACCESS_KEY": s3_password},
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
    credentials = generate()  # all files together, so the S3 keys match MinIO's
    existing = sorted(name for name in credentials if (args.out / name).exists())
    if existing and not args.force:
        print(f"error: {args.out}: {', '.join(existing)} exist (use --force)", file=sys.stderr)
        return 2
    for name, values in credentials.items():
        write_private(args.out / name, values)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
