"""The registry lock every host shares: a lease stored in the tracking store itself.

MLflow has no compare-and-set on aliases, and a "write, then re-read" check cannot see a
writer that read the old champion before us and writes after our check. Creating a
registered model, however, is atomic: the store's unique constraint on the name lets exactly
one of several concurrent creates succeed, through a tracking server (any backend) or on a
sqlite file alike. The lease is therefore a registered model ``<name>.registry-lease``,
created with tags saying who holds it and until when, and deleted on release. Every
read-decide-write on the aliases (register's gate, promote, rollback) runs under it, so a
KFP run, an Airflow task and a manual ``dove promote`` on three hosts take turns.

A holder that died leaves its lease behind; once it has expired (``LEASE_TTL_S`` after it
was taken) a waiter deletes it, after re-reading that it is still that same stale lease.
The sections held are a few API calls long; a holder that overran its lease finds out from
:meth:`Lease.verify` and reports it instead of claiming success.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlflow.exceptions import MlflowException

from dove_model.errors import DoveError

log = logging.getLogger(__name__)

LEASE_SUFFIX = ".registry-lease"
OWNER_TAG = "dove.lease.owner"
EXPIRES_TAG = "dove.lease.expires"  # unix time, seconds
LEASE_TTL_S = 120.0
WAIT_TIMEOUT_S = 600.0
POLL_S = 0.05  # first wait between attempts; doubles up to POLL_MAX_S, with jitter
POLL_MAX_S = 0.5


def lease_name(model_name: str) -> str:
    return model_name + LEASE_SUFFIX


def new_owner() -> str:
    """``host:pid:random``: unique per lease taken, readable in the MLflow UI."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Holder:
    owner: str
    expires: float


def read_holder(client: Any, name: str) -> Holder | None:
    """Who holds the lease on ``name`` (None when it is free)."""
    try:
        tags = client.get_registered_model(lease_name(name)).tags
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    try:
        expires = float(tags.get(EXPIRES_TAG, "0"))
    except ValueError:
        expires = 0.0  # unreadable: treat as expired
    return Holder(tags.get(OWNER_TAG, "unknown"), expires)


def _try_create(client: Any, name: str, owner: str, ttl: float) -> bool:
    tags = {OWNER_TAG: owner, EXPIRES_TAG: f"{time.time() + ttl:.3f}"}
    description = f"registry lease on {name!r} held by dove (deleted on release)"
    try:
        client.create_registered_model(lease_name(name), tags=tags, description=description)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            return False
        raise
    return True


def _delete_if_held_by(client: Any, name: str, owner: str) -> bool:
    """Delete the lease if ``owner`` still holds it; True when it did."""
    holder = read_holder(client, name)
    if holder is None or holder.owner != owner:
        return False
    with contextlib.suppress(MlflowException):  # another waiter deleted it first
        client.delete_registered_model(lease_name(name))
    return True


@dataclass(frozen=True)
class Lease:
    """A held lease: :meth:`verify` after writing proves nobody broke it meanwhile."""

    client: Any
    model_name: str
    owner: str

    def verify(self) -> None:
        holder = read_holder(self.client, self.model_name)
        if holder is None or holder.owner != self.owner:
            now = holder.owner if holder else "nobody"
            raise DoveError(
                f"registered model {self.model_name!r}: the registry lease expired while this "
                f"run was writing aliases (now held by {now}); check them with `dove champion`"
            )


@contextlib.contextmanager
def registry_lease(
    client: Any,
    name: str,
    *,
    timeout: float = WAIT_TIMEOUT_S,
    ttl: float = LEASE_TTL_S,
) -> Iterator[Lease]:
    """Hold the shared registry lease on ``name``; waiting longer than ``timeout`` is a
    DoveError naming the holder. Released (deleted) on exit, unless someone broke it."""
    owner = new_owner()
    deadline = time.monotonic() + timeout
    pause = POLL_S
    while not _try_create(client, name, owner, ttl):
        holder = read_holder(client, name)
        if holder is None:
            continue  # released between our create and our read: try again at once
        if holder.owner == owner:
            break  # our create went through but its reply was lost and the client retried
        if holder.expires < time.time():
            log.warning("breaking the expired registry lease of %s on %s", holder.owner, name)
            _delete_if_held_by(client, name, holder.owner)
            continue
        if time.monotonic() > deadline:
            raise DoveError(
                f"registered model {name!r}: registry lease {lease_name(name)!r} still held by "
                f"{holder.owner} after {timeout:.0f} s"
            )
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, POLL_MAX_S)
    try:
        yield Lease(client, name, owner)
    finally:
        try:
            if not _delete_if_held_by(client, name, owner):
                log.warning("registry lease on %s was no longer ours at release", name)
        except MlflowException as exc:  # the server went away: the lease expires by itself
            log.warning("could not release the registry lease on %s: %s", name, exc)
