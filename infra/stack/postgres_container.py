"""The stack's PostgreSQL in a container of its own image (``containers`` runtime).

The image (``infra/docker/Dockerfile.postgres``, ``dove images build postgres``) is Debian's
PostgreSQL 15; the cluster stays in the state folder, bind-mounted at its own path, so both
runtimes use the same cluster. One-shot commands (``initdb``, ``postgres --version``) run in
``run --rm --network=none`` containers; the server runs attached (``run --rm --name``, the
stack records the client like any other container), on the host's network, so it listens on
127.0.0.1 as the host's server does. ``down`` stops it with SIGINT: PostgreSQL's fast
shutdown, as ``pg_ctl stop -m fast``.

The server runs as the cluster's owner: the owner of an existing cluster, else the host's
``postgres`` user when we are root (so a later ``processes`` runtime can start it too), else
the image's (uid 999), or ourselves when not root (rootless, ``keep-id``).
"""

from __future__ import annotations

import os
import pwd

from infra.stack import containers
from infra.stack.config import Layout
from infra.stack.postgres import SERVER_USER, Server, as_root

BINDIR = "/usr/lib/postgresql/15/bin"
IMAGE_OWNER = (999, 999)  # the image's postgres user (Dockerfile.postgres)


def image() -> str:
    from infra.images.build import POSTGRES_IMAGE

    return POSTGRES_IMAGE


def cluster_owner(layout: Layout) -> tuple[int, int]:
    """Whose the cluster is (module docstring)."""
    if layout.pgdata.exists():
        found = layout.pgdata.stat()
        return found.st_uid, found.st_gid
    if not as_root():
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        return IMAGE_OWNER
    return entry.pw_uid, entry.pw_gid


def _mount(layout: Layout) -> list[str]:
    return ["--volume", f"{layout.postgres}:{layout.postgres}"]


def one_shot_server(engine, layout: Layout, owner: tuple[int, int]) -> Server:
    """Each program in its own ``run --rm`` container, with no network, as ``owner``."""
    prefix = [engine.binary, "run", "--rm", "--network=none"]
    prefix += containers.user_args(engine.name, *owner) + _mount(layout)
    return Server(BINDIR, owner, (*prefix, image()), environ=engine.environ())


def server_command(engine, name: str, layout: Layout, owner: tuple[int, int]) -> list[str]:
    """The attached ``run`` of the postmaster on the cluster (its port is in the cluster's
    ``dove-stack.conf``)."""
    args = [engine.binary, "run", "--rm", "--name", name, "--network=host", "--init"]
    args += ["--stop-signal", "SIGINT", *containers.user_args(engine.name, *owner)]
    return [*args, *_mount(layout), image(), f"{BINDIR}/postgres", "-D", str(layout.pgdata)]
