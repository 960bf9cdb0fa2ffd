"""Manual registry operations: promote, rollback, inspect, download the champion."""

from __future__ import annotations

from pathlib import Path

from dove_model.config import Params
from dove_model.errors import DoveError, GateFailed
from dove_model.registry import aliases
from dove_model.registry.aliases import AliasChange
from dove_model.registry.lock import registry_lock
from dove_model.registry.tracking import configure

ALIASES = (aliases.CHAMPION, aliases.PREVIOUS, aliases.CHALLENGER)


def _client(params: Params, root: Path | None) -> tuple[object, str]:
    from mlflow import MlflowClient

    uri = configure(params.register_, root)
    return MlflowClient(uri, uri), uri


def promote(
    params: Params, version: str | None = None, *, force: bool = False, root: Path | None = None
) -> list[AliasChange]:
    """Make ``version`` (default: the challenger) champion. A version whose recall gate
    failed is refused unless ``force``; promoting the current champion changes nothing."""
    client, uri = _client(params, root)
    name = params.register_.model_name
    with registry_lock(uri, root):
        if version is None:
            challenger = aliases.version_by_alias(client, name, aliases.CHALLENGER)
            if challenger is None:
                raise DoveError(f"registered model {name!r}: no challenger to promote")
            version = str(challenger.version)
        target = aliases.require_version(client, name, str(version))
        if target.tags.get("gate") != "passed" and not force:
            raise GateFailed(
                f"{name} v{version}: recall gate {target.tags.get('gate', 'not run')} "
                f"({target.tags.get('gate_summary', 'no summary')}); use --force to override"
            )
        return aliases.make_champion(client, name, str(version))


def rollback(params: Params, *, root: Path | None = None) -> list[AliasChange]:
    """Give ``champion`` back to ``previous-champion``."""
    client, uri = _client(params, root)
    with registry_lock(uri, root):
        return aliases.rollback_champion(client, params.register_.model_name)


def alias_state(params: Params, *, root: Path | None = None) -> dict[str, str | None]:
    """Which version each alias points at (None where unset)."""
    client, _ = _client(params, root)
    name = params.register_.model_name
    state = {}
    for alias in ALIASES:
        found = aliases.version_by_alias(client, name, alias)
        state[alias] = str(found.version) if found else None
    return state


def champion_uri(params: Params) -> str:
    return f"models:/{params.register_.model_name}@{aliases.CHAMPION}"


def download_champion(params: Params, dst: Path, *, root: Path | None = None) -> Path:
    """Download ``models:/<name>@champion`` under ``dst``; returns its model directory
    (model.safetensors, config.json, vocab.json) for the index and the service."""
    from dove_model.registry.register import download_model_dir

    client, _ = _client(params, root)
    name = params.register_.model_name
    if aliases.version_by_alias(client, name, aliases.CHAMPION) is None:
        raise DoveError(f"registered model {name!r}: no champion yet (run the pipeline first)")
    return download_model_dir(champion_uri(params), Path(dst))
