"""A private PostgreSQL cluster in the state folder: ``initdb``, ``pg_ctl``, one role and
database each for MLflow, MLflow's user store and Airflow.

A :class:`Server` says where the programs come from and whose the cluster is: the host's
Debian package ``postgresql`` (:func:`host_server`), or the stack's PostgreSQL image, one
container per command (``infra/stack/postgres_container.py``). PostgreSQL refuses to run as
root: when ``dove stack`` runs as root the host's cluster belongs to the ``postgres`` system
user (that package creates it) and every server command runs through ``runuser -u postgres``.
It listens on 127.0.0.1 only, with no Unix socket, and asks every client for a password.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.stack.config import DATABASES, LOOPBACK, Layout, StackError
from infra.stack.credentials import Account
from infra.stack.processes import open_log

SERVER_USER = "postgres"  # the Debian package's system user, used when we are root
BINARIES = ("initdb", "pg_ctl", "postgres", "pg_isready")
CONF_NAME = "dove-stack.conf"
MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_isready) not found: install the "
    "Debian package `postgresql` (apt-get install postgresql) or pass --pg-bindir"
)


def _has_binaries(folder: Path) -> bool:
    return all((folder / name).is_file() for name in BINARIES)


def _pg_config_bindir() -> Path | None:
    if not shutil.which("pg_config"):
        return None
    done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def find_bindir(explicit: Path | None = None) -> Path:
    """The folder holding initdb, pg_ctl, postgres and pg_isready."""
    if explicit is not None:
        if not _has_binaries(explicit):
            raise StackError(
                f"{explicit}: no PostgreSQL server binaries there ({', '.join(BINARIES)})"
            )
        return explicit
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    candidates = [_pg_config_bindir(), *debian, Path(on_path).resolve().parent if on_path else None]
    for folder in candidates:
        if folder is not None and _has_binaries(folder):
            return folder
    raise StackError(MISSING)


def choose_bindir(explicit: Path | None, remembered: str) -> Path:
    """The one asked for, else the one the cluster was started with, else the one found."""
    if explicit is not None:
        return find_bindir(explicit)
    if remembered and _has_binaries(Path(remembered)):
        return Path(remembered)
    return find_bindir()


def as_root() -> bool:
    return os.geteuid() == 0


def server_owner() -> tuple[int, int]:
    """uid and gid the cluster runs as: ``postgres`` when we are root, else ourselves."""
    if not as_root():
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise StackError(
            f"running as root, PostgreSQL needs the `{SERVER_USER}` system user, which the "
            "Debian package `postgresql` creates: install it, or run as another user"
        ) from None
    return entry.pw_uid, entry.pw_gid


@dataclass(frozen=True)
class Server:
    """How this stack runs PostgreSQL's programs: ``prefix`` (``runuser``, or an engine's
    one-shot ``run``) before ``<bindir>/<program>``, as ``owner`` (uid, gid), whose the
    cluster's files are; ``environ``: the environment they need (an engine's settings), else
    this process's."""

    bindir: str
    owner: tuple[int, int]
    prefix: tuple[str, ...] = ()
    environ: Mapping[str, str] | None = None

    def argv(self, program: str, *args: str) -> list[str]:
        return [*self.prefix, f"{self.bindir}/{program}", *args]


def host_server(bindir: Path) -> Server:
    """The host's binaries; as root, run as the ``postgres`` system user."""
    prefix = ("runuser", "-u", SERVER_USER, "--") if as_root() else ()
    return Server(str(bindir), server_owner(), prefix)


def _give(path: Path, mode: int, owner: tuple[int, int]) -> None:
    """Hand ``path`` to the server's user (a no-op when that is us)."""
    if as_root():
        os.chown(path, *owner)
    os.chmod(path, mode)


def check_reachable(layout: Layout) -> None:
    """As root, the host's ``postgres`` user must be able to reach the state folder."""
    if not as_root():
        return
    command = ["runuser", "-u", SERVER_USER, "--", "test", "-x", str(layout.postgres)]
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise StackError(
            f"the `{SERVER_USER}` user cannot reach {layout.postgres} (a folder above it is "
            "closed to other users, e.g. mode 0700): pass a --state-dir it can reach, such as "
            "one under /var/tmp or /srv, run as a non-root user, or use --runtime containers"
        )


def _run(server: Server, command: Sequence[str], what: str, log: Path, cwd: Path) -> None:
    environ = dict(server.environ) if server.environ is not None else None
    with open_log(log) as out:
        done = subprocess.run(
            list(command), cwd=cwd, env=environ, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise StackError(f"{what} failed (exit {done.returncode}): read {log}")


def prepare_log(log: Path, owner: tuple[int, int]) -> None:
    """The host's server writes its log itself, as its own user."""
    open_log(log).close()
    _give(log, 0o600, owner)


def initdb(layout: Layout, server: Server, superuser: Account, log: Path) -> bool:
    """Create the cluster once (in a temporary folder renamed into place); False when it
    exists already."""
    if (layout.pgdata / "PG_VERSION").is_file():
        return False
    layout.postgres.mkdir(parents=True, exist_ok=True)
    tmp = layout.postgres / "data.initdb"
    pwfile = layout.postgres / "superuser.pw"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    _give(tmp, 0o700, server.owner)
    try:
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(superuser.password + "\n")
        _give(pwfile, 0o600, server.owner)
        command = server.argv("initdb", "-D", str(tmp), "-U", superuser.username)
        command += [f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8"]
        _run(server, [*command, "--locale=C", "--no-instructions"], "initdb", log, layout.postgres)
        with (tmp / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"\n# dove stack: listen address, port, no Unix socket\ninclude = '{CONF_NAME}'\n"
            )
        write_conf(tmp, 0, server.owner)
        tmp.rename(layout.pgdata)
    finally:
        pwfile.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def write_conf(pgdata: Path, port: int, owner: tuple[int, int]) -> None:
    """The settings this stack owns, rewritten on every ``up`` (the port may change)."""
    path = pgdata / CONF_NAME
    path.write_text(
        "# written by `dove stack up`: changes here are overwritten\n"
        f"listen_addresses = '{LOOPBACK}'\nport = {port}\nunix_socket_directories = ''\n",
        encoding="utf-8",
    )
    _give(path, 0o600, owner)


def server_version(server: Server) -> str:
    """The major version of ``postgres --version`` (``15 (Debian 15.18-0+deb12u1)`` -> 15)."""
    environ = dict(server.environ) if server.environ is not None else None
    command = server.argv("postgres", "--version")
    done = subprocess.run(command, env=environ, capture_output=True, text=True, check=False)
    words = done.stdout.split() if done.returncode == 0 else []
    return words[2].split(".")[0] if len(words) > 2 else "?"


def check_version(layout: Layout, server: Server) -> None:
    """A cluster made by another major version cannot be started by these binaries."""
    made = (layout.pgdata / "PG_VERSION").read_text().strip()
    found = server_version(server)
    if made != found:
        raise StackError(
            f"{layout.pgdata} was made by PostgreSQL {made}, {server.bindir} is {found}: pass "
            f"--pg-bindir /usr/lib/postgresql/{made}/bin, or use a new --state-dir"
        )


def postmaster_pid(layout: Layout) -> int | None:
    """The server's pid from ``postmaster.pid``, when that process runs this cluster (after a
    reboot the file is stale and the pid may belong to another program)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((layout.pgdata / "postmaster.pid").read_text().splitlines()[0])
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if str(layout.pgdata).encode() in arguments:
            return pid
    return None


def start(layout: Layout, server: Server, port: int, log: Path) -> None:
    write_conf(layout.pgdata, port, server.owner)
    command = server.argv("pg_ctl", "start", "-D", str(layout.pgdata), "-l", str(log))
    _run(server, [*command, "-w", "-t", "120", "-s"], "pg_ctl start", log, layout.postgres)


def stop(layout: Layout, server: Server, log: Path) -> None:
    """``pg_ctl stop -m fast`` (a no-op when it is not running)."""
    if postmaster_pid(layout) is None:
        return
    command = server.argv("pg_ctl", "stop", "-D", str(layout.pgdata), "-m", "fast")
    _run(server, [*command, "-w", "-t", "60", "-s"], "pg_ctl stop", log, layout.postgres)


def is_ready(bindir: Path, port: int) -> bool:
    """``pg_isready`` on the loopback port."""
    command = [str(bindir / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(port), "-t", "3"]
    return subprocess.run(command, check=False).returncode == 0


def accepts_logins(port: int, superuser: Account) -> bool:
    """The superuser logs in on the loopback port (the probe wherever ``pg_isready`` is not on
    this host: the server in a container)."""
    import psycopg2

    try:
        psycopg2.connect(
            host=LOOPBACK, port=port, dbname="postgres", user=superuser.username,
            password=superuser.password, connect_timeout=3,
        ).close()  # fmt: skip
    except psycopg2.Error:
        return False
    return True


def ensure_databases(port: int, superuser: Account, owners: dict[str, Account]) -> None:
    """Each database with its owner role (password reset to the saved one); no other role
    may connect to it."""
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(
        host=LOOPBACK, port=port, dbname="postgres", user=superuser.username,
        password=superuser.password, connect_timeout=10,
    )  # fmt: skip
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for name in DATABASES:
                role, owner = sql.Identifier(owners[name].username), owners[name]
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner.username,))
                verb = "ALTER" if cursor.fetchone() else "CREATE"
                statement = sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD %s").format(role)
                cursor.execute(statement, (owner.password,))
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if not cursor.fetchone():
                    database = sql.Identifier(name)
                    cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
                    revoke = sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database)
                    cursor.execute(revoke)
    finally:
        connection.close()
