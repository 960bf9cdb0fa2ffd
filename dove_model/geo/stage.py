"""``dove archive ingest`` as a pipeline stage: the settings come from ``params.yaml``'s
``archive`` section (``dvc repro archive_ingest``, the Airflow DAG's ``ingest_archive`` task,
``dove archive build``) instead of the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dove_model.config import ArchiveParams
from dove_model.errors import ConfigError
from dove_model.geo.ingest import IngestSummary, ingest
from dove_model.geo.settings import IngestParams, SourceQuery, first_error

Settings = TypeVar("Settings", bound=BaseModel)


def configured_settings(archive: ArchiveParams) -> tuple[IngestParams, SourceQuery]:
    """``archive.ingest`` and ``archive.query`` validated (ConfigError naming the key)."""
    return (
        _section(IngestParams, archive.ingest, "ingest"),
        _section(SourceQuery, archive.query, "query"),
    )


def _section(kind: type[Settings], values: dict[str, Any], key: str) -> Settings:
    try:
        return kind(**values)
    except ValidationError as exc:
        raise ConfigError(f"params: invalid archive.{key}.{first_error(exc)}") from None


def ingest_configured(
    archive: ArchiveParams, root: Path | str = ".", *, progress: bool = True
) -> IngestSummary:
    """Ingest ``archive.source`` into ``archive.out_dir`` (both relative to ``root``);
    ConfigError while no source is configured."""
    if archive.source is None:
        raise ConfigError("archive.source is not set in params.yaml: there is nothing to ingest")
    params, query = configured_settings(archive)
    source = archive.source
    if "://" not in source:
        source = str(Path(root) / source)
    return ingest(source, Path(root) / archive.out_dir, params, query, progress=progress)
