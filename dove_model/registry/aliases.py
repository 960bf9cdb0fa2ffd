"""Aliases of the registered model: challenger, champion, previous-champion.

Callers hold the shared lease (:func:`dove_model.registry.lease.registry_lease`) around
every function that writes, so a read-decide-write sequence is never interleaved with
another pipeline run, on this host or another, and check the result with
:func:`verify_aliases`. Versions are always addressed by number, never re-read through an
alias, so one run can never promote a version another run registered.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from dove_model.errors import DoveError

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS = "previous-champion"
PROMOTED_OVER_TAG = "promoted_over"  # the champion this version replaced ("none" if first)


@dataclass(frozen=True)
class AliasChange:
    alias: str
    old: str | None
    new: str | None

    def __str__(self) -> str:
        before = f"v{self.old}" if self.old else "(none)"
        after = f"v{self.new}" if self.new else "(removed)"
        return f"{self.alias}: {before} -> {after}"


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def set_alias(client: MlflowClient, name: str, alias: str, version: str | None) -> AliasChange:
    """Point ``alias`` at ``version`` (None removes it) and say what changed."""
    current = version_by_alias(client, name, alias)
    old = str(current.version) if current else None
    if version is None:
        if old is not None:
            client.delete_registered_model_alias(name, alias)
    elif old != str(version):
        client.set_registered_model_alias(name, alias, str(version))
    return AliasChange(alias, old, None if version is None else str(version))


def set_challenger(client: MlflowClient, name: str, version: str) -> list[AliasChange]:
    """``version`` becomes challenger unless a newer version already is (two registrations
    finishing out of order leave the newest one as challenger)."""
    current = version_by_alias(client, name, CHALLENGER)
    if current is not None and int(current.version) >= int(version):
        return []
    return [set_alias(client, name, CHALLENGER, version)]


def verify_aliases(client: MlflowClient, name: str, changes: list[AliasChange]) -> None:
    """Re-read the aliases just written: each must point where ``changes`` put it."""
    now = client.get_registered_model(name).aliases
    for change in changes:
        found = str(now[change.alias]) if change.alias in now else None
        if found != change.new:
            where = f"v{found}" if found else "unset"
            raise DoveError(
                f"registered model {name!r}: {change.alias} is {where} right after this run "
                f"set {change}; another writer changed the aliases without the registry lease "
                "(check them with `dove champion`)"
            )


def make_champion(client: MlflowClient, name: str, version: str) -> list[AliasChange]:
    """``version`` becomes champion; the champion it replaces becomes previous-champion."""
    current = version_by_alias(client, name, CHAMPION)
    if current is not None and str(current.version) == str(version):
        return []
    changes = []
    if current is not None:
        changes.append(set_alias(client, name, PREVIOUS, str(current.version)))
    client.set_model_version_tag(
        name, str(version), PROMOTED_OVER_TAG, str(current.version) if current else "none"
    )
    changes.append(set_alias(client, name, CHAMPION, str(version)))
    return changes


def rollback_champion(client: MlflowClient, name: str) -> list[AliasChange]:
    """previous-champion becomes champion again; previous-champion steps one further back."""
    previous = version_by_alias(client, name, PREVIOUS)
    if previous is None:
        raise DoveError(f"registered model {name!r}: no {PREVIOUS} alias to roll back to")
    current = version_by_alias(client, name, CHAMPION)
    changes = [set_alias(client, name, CHAMPION, str(previous.version))]
    if current is not None:
        client.set_model_version_tag(name, str(current.version), "rolled_back", "true")
    before = previous.tags.get(PROMOTED_OVER_TAG)
    older = before if before and before not in ("none", str(previous.version)) else None
    changes.append(set_alias(client, name, PREVIOUS, older))
    return changes


def require_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise DoveError(f"registered model {name!r}: version {version} not found") from None
