"""Manual registry operations: promote, rollback, inspect, resolve and download the champion.

Writers hold the sqlite file lock (one host) and the registry lease (every host), then
re-read the aliases they wrote before reporting success.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dove_model.config import Params
from dove_model.errors import DoveError, GateFailed
from dove_model.registry import aliases
from dove_model.registry.aliases import AliasChange
from dove_model.registry.gates import GateVerdict
from dove_model.registry.lease import registry_lease
from dove_model.registry.lock import registry_lock
from dove_model.registry.register import GATE_SUMMARY_TAG, GATE_TAG, download_model_dir
from dove_model.registry.tracking import configure

ALIASES = (aliases.CHAMPION, aliases.PREVIOUS, aliases.CHALLENGER)


def _client(params: Params, root: Path | None) -> tuple[Any, str]:
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
    with registry_lock(uri), registry_lease(client, name) as lease:
        if version is None:
            challenger = aliases.version_by_alias(client, name, aliases.CHALLENGER)
            if challenger is None:
                raise DoveError(f"registered model {name!r}: no challenger to promote")
            version = str(challenger.version)
        target = aliases.require_version(client, name, str(version))
        if target.tags.get(GATE_TAG) != GateVerdict.PASSED and not force:
            raise GateFailed(
                f"{name} v{version}: recall gate {target.tags.get(GATE_TAG, 'not run')} "
                f"({target.tags.get(GATE_SUMMARY_TAG, 'no summary')}); use --force to override"
            )
        changes = aliases.make_champion(client, name, str(version))
        aliases.verify_aliases(client, name, changes)
        lease.verify()
        return changes


def rollback(params: Params, *, root: Path | None = None) -> list[AliasChange]:
    """Give ``champion`` back to ``previous-champion``."""
    client, uri = _client(params, root)
    name = params.register_.model_name
    with registry_lock(uri), registry_lease(client, name) as lease:
        changes = aliases.rollback_champion(client, name)
        aliases.verify_aliases(client, name, changes)
        lease.verify()
        return changes


def alias_state(params: Params, *, root: Path | None = None) -> dict[str, str | None]:
    """Which version each alias points at (None where unset), read in one request."""
    from mlflow.exceptions import MlflowException

    client, _ = _client(params, root)
    name = params.register_.model_name
    try:
        found = client.get_registered_model(name).aliases
    except MlflowException:  # no such model yet: no aliases
        found = {}
    return {alias: (str(found[alias]) if alias in found else None) for alias in ALIASES}


def champion_uri(params: Params) -> str:
    return f"models:/{params.register_.model_name}@{aliases.CHAMPION}"


def resolve_champion(params: Params, *, root: Path | None = None) -> Any:
    """The champion's ModelVersion, read once: callers use its number (never the alias
    again) for everything they do with it, so a promotion meanwhile cannot mix versions."""
    client, _ = _client(params, root)
    name = params.register_.model_name
    champion = aliases.version_by_alias(client, name, aliases.CHAMPION)
    if champion is None:
        raise DoveError(f"registered model {name!r}: no champion yet (run the pipeline first)")
    return champion


def version_uri(params: Params, version: str) -> str:
    return f"models:/{params.register_.model_name}/{version}"


def download_version(params: Params, version: str, dst: Path, *, root: Path | None = None) -> Path:
    """Download ``models:/<name>/<version>`` under ``dst``; returns its model directory."""
    configure(params.register_, root)
    return download_model_dir(version_uri(params, str(version)), Path(dst))


def download_champion(params: Params, dst: Path, *, root: Path | None = None) -> Path:
    """Download the champion under ``dst``; returns its model directory (model.safetensors,
    config.json, vocab.json) for the index and the service. The alias is resolved once and
    the version downloaded by number."""
    champion = resolve_champion(params, root=root)
    return download_version(params, str(champion.version), dst, root=root)


def alias_families(params: Params, *, root: Path | None = None) -> dict[str, str | None]:
    """The model family of each alias's version (None where unset; the legacy family for a
    version registered before families were tagged)."""
    from dove_model.families.registry import LEGACY_FAMILY
    from dove_model.registry.register import FAMILY_TAG

    client, _ = _client(params, root)
    name = params.register_.model_name
    families: dict[str, str | None] = {}
    for alias in ALIASES:
        version = aliases.version_by_alias(client, name, alias)
        families[alias] = None if version is None else version.tags.get(FAMILY_TAG, LEGACY_FAMILY)
    return families
