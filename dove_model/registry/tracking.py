"""Where MLflow lives and which data version a run used.

The tracking URI is resolved once at the entry point: ``MLFLOW_TRACKING_URI`` when set,
else ``register.tracking_uri`` from params.yaml (default: sqlite under ``mlruns/``).
A relative sqlite path is made absolute against the project root so every stage, the
KFP local runner and Airflow tasks all share one store.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from dove_model.config import RegisterParams
from dove_model.data.versioning import DATA_TARGET

TRACKING_ENV = "MLFLOW_TRACKING_URI"
REGISTRY_ENV = "MLFLOW_REGISTRY_URI"
SQLITE_PREFIX = "sqlite:///"


def resolve_tracking_uri(
    register: RegisterParams, root: Path | None = None, environ: dict[str, str] | None = None
) -> str:
    """The tracking URI to use: the environment wins, then params; sqlite paths made absolute."""
    env = os.environ if environ is None else environ
    uri = env.get(TRACKING_ENV) or register.tracking_uri
    if uri.startswith(SQLITE_PREFIX):
        db = Path(uri[len(SQLITE_PREFIX) :])
        if not db.is_absolute():
            db = (root or Path.cwd()) / db
        return f"{SQLITE_PREFIX}{db.resolve()}"
    if "://" not in uri:  # a plain folder: MLflow's file store is deprecated, use sqlite in it
        return f"{SQLITE_PREFIX}{((root or Path.cwd()) / uri).resolve() / 'mlflow.db'}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite tracking URI, else None."""
    return Path(uri[len(SQLITE_PREFIX) :]) if uri.startswith(SQLITE_PREFIX) else None


def configure(register: RegisterParams, root: Path | None = None) -> str:
    """Point MLflow (tracking and registry) at the resolved URI; returns it.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI`` (and the registry
    twin) to the environment; that is undone here, so the environment keeps meaning "what
    the user asked for" and a later call for another project resolves afresh.
    """
    import mlflow

    uri = resolve_tracking_uri(register, root)
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    saved = {name: os.environ.get(name) for name in (TRACKING_ENV, REGISTRY_ENV)}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return uri


@dataclass(frozen=True)
class DataVersion:
    """Which data a model saw: a content hash of the manifest (the same in DVC, KFP and
    Airflow runs), the md5 DVC recorded for it where DVC tracks it, and the git revision."""

    content_hash: str
    dvc_md5: str | None
    git_revision: str

    @property
    def tag(self) -> str:
        """The key that decides whether two evaluations are comparable."""
        return self.content_hash

    def as_tags(self) -> dict[str, str]:
        return {
            "data_version": self.content_hash,
            "data_dvc_md5": self.dvc_md5 or "untracked",
            "git_revision": self.git_revision,
        }


def git_revision(root: Path) -> str:
    """``git rev-parse HEAD`` with a ``-dirty`` suffix when tracked files have changed."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def _md5_from_dvc_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    outs = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("outs") or []
    return next((str(o["md5"]) for o in outs if isinstance(o, dict) and o.get("md5")), None)


def _md5_from_dvc_lock(lock: Path, dataset_dir: Path, root: Path) -> str | None:
    """The md5 dvc.lock recorded for the prepared dataset folder (or a folder holding it)."""
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages") or {}
    try:
        wanted = dataset_dir.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    for stage in stages.values():
        for out in stage.get("outs") or []:
            path = Path(out.get("path", ""))
            if out.get("md5") and (path == wanted or path in wanted.parents):
                return str(out["md5"])
    return None


def manifest_hash(dataset_dir: Path) -> str:
    """md5 over the manifest rows: every caption, split and image sha256, in a stable order."""
    from dove_model.data.manifest import read_manifest

    frame = read_manifest(dataset_dir)
    columns = ["image_id", "caption_id", "caption", "split", "sha256"]
    rows = frame[columns].astype(str).sort_values(["image_id", "caption_id"])
    digest = hashlib.md5(usedforsecurity=False)
    for row in rows.itertuples(index=False):
        digest.update("\x1f".join(row).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def detect_data_version(dataset_dir: Path, root: Path | None = None) -> DataVersion:
    """The manifest's content hash plus DVC's md5 (data.dvc, else dvc.lock) and git rev."""
    root = root or Path.cwd()
    dvc_md5 = _md5_from_dvc_file(root / f"{DATA_TARGET}.dvc") or _md5_from_dvc_lock(
        root / "dvc.lock", dataset_dir, root
    )
    return DataVersion(manifest_hash(dataset_dir), dvc_md5, git_revision(root))
