"""The BentoML model store side of deployment.

A Bento must be self-contained, so the MLflow champion's model directory is copied into the
BentoML model store (``bentoml.models.create``) with labels saying where it came from; the
service loads it back with :func:`model_dir_of`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dove_model.config import Params
from dove_model.errors import ConfigError
from dove_model.families.dispatch import check_model_dir
from dove_model.model.directory import model_fingerprint
from dove_model.training.run import MODEL_SUBDIR


@dataclass(frozen=True)
class ImportedModel:
    tag: str  # name:version in the BentoML store
    model_dir: Path  # the model directory inside the store
    labels: dict[str, str]


def import_model_dir(
    model_dir: Path | str,
    name: str,
    *,
    model_version: str = "local",
    alias: str = "none",
    data_version: str = "unknown",
    store_dir: Path | None = None,
) -> ImportedModel:
    """Copy a model directory into the BentoML store (default: $BENTOML_HOME/models) as a new
    version of ``name``."""
    import bentoml

    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    labels = {
        "model_version": str(model_version),
        "alias": str(alias),
        "data_version": str(data_version),
        "fingerprint": model_fingerprint(model_dir)[:16],
    }
    with bentoml.models.create(
        name,
        labels=labels,
        metadata={"source_dir": str(model_dir.resolve())},
        **_store_kwargs(store_dir),
    ) as stored:
        shutil.copytree(model_dir, Path(stored.path) / MODEL_SUBDIR)
    final_dir, _ = model_dir_of(str(stored.tag), store_dir)  # the store moves it on save
    return ImportedModel(tag=str(stored.tag), model_dir=final_dir, labels=labels)


def _store_kwargs(store_dir: Path | None) -> dict[str, object]:
    """BentoML's private hook for a model store other than the global one (tests, tools)."""
    if store_dir is None:
        return {}
    from bentoml._internal.models import ModelStore

    return {"_model_store": ModelStore(str(store_dir))}


def import_champion(
    params: Params, *, root: Path | None = None, store_dir: Path | None = None
) -> ImportedModel:
    """Import the MLflow champion into the BentoML store.

    ``@champion`` is resolved once; the weights are downloaded as ``models:/<name>/<version>``
    and the labels (version, data version) come from that same version, so a promotion
    while deploying cannot label one version and ship another's weights.
    """
    from dove_model.registry import aliases
    from dove_model.registry.promotion import download_version, resolve_champion

    champion = resolve_champion(params, root=root)
    version = str(champion.version)
    with tempfile.TemporaryDirectory(prefix="dove-champion-") as tmp:
        model_dir = download_version(params, version, Path(tmp), root=root)
        return import_model_dir(
            model_dir,
            params.register_.model_name,
            model_version=version,
            alias=aliases.CHAMPION,
            data_version=champion.tags.get("data_version") or "unknown",
            store_dir=store_dir,
        )


def model_dir_of(tag: str, store_dir: Path | None = None) -> tuple[Path, dict[str, str]]:
    """The model directory and labels of a model in the BentoML store."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        stored = bentoml.models.get(tag, **_store_kwargs(store_dir))
    except NotFound:
        raise ConfigError(
            f"BentoML model {tag!r} not found in the model store (run `dove deploy`)"
        ) from None
    model_dir = Path(stored.path) / MODEL_SUBDIR
    check_model_dir(model_dir)
    return model_dir, {str(k): str(v) for k, v in stored.info.labels.items()} | {
        "tag": str(stored.tag)
    }
