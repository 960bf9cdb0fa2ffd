"""Version the dataset folder with DVC (its Python API; the same as `dvc add` + `dvc push`).

The data version other stages record (MLflow tags, the registry's "same data" comparison) is
the md5 DVC gives the tracked folder in ``data.dvc``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from dove_model.errors import DataFormatError

DATA_TARGET = "data"


@dataclass(frozen=True)
class DataVersion:
    md5: str  # DVC's hash of the tracked folder ("<md5>.dir")
    n_files: int
    pushed: int  # files sent to the remote by this call


def data_version(repo_root: Path | str = ".", target: str = DATA_TARGET) -> str:
    """The md5 of ``target`` recorded in ``<target>.dvc`` (the committed data version)."""
    dvc_file = Path(repo_root) / f"{target}.dvc"
    if not dvc_file.is_file():
        raise DataFormatError(f"{dvc_file}: not found (run `dvc add {target}` first)")
    try:
        outs = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"]
        return str(outs[0]["md5"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        raise DataFormatError(f"{dvc_file}: not a DVC file with one output") from None


def version_data(
    repo_root: Path | str = ".", target: str = DATA_TARGET, *, push: bool = True
) -> DataVersion:
    """``dvc add <target>`` (a no-op when unchanged) and, with ``push``, ``dvc push`` it to the
    default remote (a local folder unless the user configured S3/MinIO)."""
    from dvc.repo import Repo

    root = Path(repo_root).resolve()
    # DVC resolves the stage's working directory from the process's current one
    with contextlib.chdir(root), Repo(str(root)) as repo:
        repo.add(target)
        pushed = repo.push(targets=[f"{target}.dvc"]) if push else 0
    outs = yaml.safe_load((root / f"{target}.dvc").read_text(encoding="utf-8"))["outs"][0]
    return DataVersion(md5=str(outs["md5"]), n_files=int(outs.get("nfiles", 0)), pushed=int(pushed))
