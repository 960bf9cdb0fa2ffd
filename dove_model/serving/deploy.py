"""``dove deploy``: put a model into the BentoML store and build the archive index with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dove_model.config import Params
from dove_model.index.build import build_index
from dove_model.serving.model_store import ImportedModel, import_champion, import_model_dir


@dataclass(frozen=True)
class Deployment:
    model: ImportedModel
    index_dir: Path


def deploy(
    params: Params,
    source: Path | str,
    *,
    model_dir: Path | str | None = None,
    index_dir: Path | str | None = None,
    root: Path | None = None,
    store_dir: Path | None = None,
    progress: bool = True,
) -> Deployment:
    """Import the MLflow champion (or ``model_dir``) and index ``source`` with that model, as
    a new version of the index root (a running service swaps to it within
    ``serve.index_poll_s``)."""
    if model_dir is None:
        imported = import_champion(params, root=root, store_dir=store_dir)
    else:
        imported = import_model_dir(model_dir, params.register_.model_name, store_dir=store_dir)
    out = Path(index_dir or params.index.out_dir)
    build_index(
        imported.model_dir,
        source,
        params,
        out,
        model_info={"tag": imported.tag, **imported.labels},
        progress=progress,
        versioned=True,
    )
    return Deployment(model=imported, index_dir=out)
