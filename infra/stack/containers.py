"""The stack's services in containers of the pipeline image, where a container engine runs.

``stack.runtime``: ``processes`` (every service a host process, as without an engine),
``containers`` (MLflow, Airflow's three components and the service each in a container of
``pipeline.image``; PostgreSQL stays a host process) or ``auto`` (containers when an engine
answers and the pipeline image builds, else processes).

A container is started *attached*: ``<engine> run --rm --name ...`` is the process the stack
spawns and records (its output is the service's log, its exit is the container's), so reuse,
readiness and logs work as for a process. ``down`` stops the container by its name
(``<engine> stop``, then ``rm -f``): the engine's client forwards signals, but a killed client
would leave its container running.

Every container runs on the host's network (the same 127.0.0.1 ports), with the caller's uid
and gid, the project, the state folder and the DAGs folder mounted at their own paths, and
only the environment the stack owns (``-e NAME``: the value comes from the client's
environment, never from its command line, which ``ps`` shows).

Before a ``containers`` ``up`` the pipeline image is rebuilt from the checkout (the engine's
layer cache: seconds when the code did not change), so the code in the containers is the
checkout's; nothing is pulled.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from infra.stack.config import Layout, StackError
from infra.stack.environment import OWNED_NAMES, OWNED_PREFIXES, TELEMETRY_OFF, venv_bin

RUNTIMES = ("auto", "containers", "processes")
# the services that run in a container in ``containers`` mode (PostgreSQL is a host process)
CONTAINED = ("mlflow", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor")
CONTAINED += ("service",)
STOP_TIMEOUT_S = 30


def check_runtime(requested: str) -> str:
    if requested not in RUNTIMES:
        raise StackError(f"runtime {requested!r}: use one of {', '.join(RUNTIMES)}")
    return requested


def choose_runtime(requested: str, engine_runs: bool, image_ready: bool, previous: str) -> str:
    """The runtime of this ``up``: what runs already keeps its runtime (``previous``, empty
    when nothing runs); ``auto`` takes containers when an engine runs them and the image is
    built, else processes; ``containers`` without either is an error."""
    check_runtime(requested)
    if previous:
        if requested not in ("auto", previous):
            raise StackError(
                f"the stack runs as {previous} now: `dove stack down` before --runtime {requested}"
            )
        return previous
    if requested == "processes":
        return "processes"
    if engine_runs and image_ready:
        return "containers"
    if requested == "containers":
        what = "no container engine runs containers" if not engine_runs else "no pipeline image"
        raise StackError(f"--runtime containers: {what} (`dove images build pipeline`)")
    return "processes"


def container_name(layout: Layout, service: str) -> str:
    """``dove-stack-<8 hex of the state folder>-<service>``: two stacks never share one."""
    digest = hashlib.sha256(str(layout.root).encode()).hexdigest()[:8]
    return f"dove-stack-{digest}-{service}"


def container_argv(command: Sequence[str]) -> list[str]:
    """The host command as the image runs it: this interpreter becomes the image's ``python``,
    a console script of this venv the image's script of the same name (both on its PATH)."""
    first = Path(command[0])
    if str(first) == sys.executable:
        return ["python", *command[1:]]
    if first.parent == venv_bin():
        return [first.name, *command[1:]]
    return list(command)


def container_env(env: Mapping[str, str], home: Path) -> dict[str, str]:
    """What the stack owns of ``env`` (MLflow, Airflow, BentoML, libpq settings, the service's
    DOVE_* settings, telemetry off) and a writable HOME; the caller's PATH, venv and the rest
    stay outside."""
    owned = {
        name: value
        for name, value in env.items()
        if name.startswith(OWNED_PREFIXES) or name in OWNED_NAMES or name in TELEMETRY_OFF
    }
    return owned | {"HOME": str(home)}


def mounts(paths: Iterable[Path]) -> list[Path]:
    """The folders to bind-mount, each at its own path: none inside another one."""
    unique = sorted({Path(p).resolve() for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(path.is_relative_to(outer) for outer in kept):
            kept.append(path)
    return sorted(kept)


def user_args(engine_name: str, uid: int, gid: int) -> list[str]:
    """Run as ``uid:gid`` (the caller, so what a service writes under the mounts stays the
    caller's); rootless podman maps the caller's uid into the container with ``keep-id``."""
    args = ["--user", f"{uid}:{gid}"]
    if engine_name == "podman" and os.geteuid() != 0:
        args.append("--userns=keep-id")
    return args


def run_command(
    binary: str,
    engine_name: str,
    name: str,
    image: str,
    command: Sequence[str],
    *,
    env_names: Iterable[str],
    volumes: Iterable[Path],
    cwd: Path,
    ids: tuple[int, int] | None = None,
) -> list[str]:
    """``<engine> run --rm --name NAME --network=host ... IMAGE COMMAND`` (attached)."""
    uid, gid = ids if ids is not None else (os.getuid(), os.getgid())
    args = [binary, "run", "--rm", "--name", name, "--network=host", "--init"]
    args += user_args(engine_name, uid, gid)
    for volume in mounts(volumes):
        args += ["--volume", f"{volume}:{volume}"]
    args += ["--workdir", str(cwd)]
    for env_name in sorted(env_names):
        args += ["--env", env_name]
    return [*args, image, *container_argv(command)]


def find_runner(requested: str):  # -> Engine | None
    """The engine that runs containers (docker's daemon answering, else podman), or None;
    with ``processes`` none is looked for."""
    from dove_model.errors import ConfigError
    from infra.images.engine import find_engine

    if requested == "processes":
        return None
    try:
        engine = find_engine()
    except ConfigError:
        return None
    if not engine.can_run or engine.run("info", check=False, timeout=60).returncode != 0:
        return None
    return engine


def build_image(engine, step: str, tag: str, log: Path) -> bool:
    """``dove images build <step>`` (``pipeline`` tagged ``tag`` from the checkout, or
    ``postgres``; bases reused, the engine's layer cache: seconds when nothing changed);
    False, with the reason in ``log``, when it fails."""
    import time

    from dove_model.errors import ConfigError
    from infra.images.build import ImageSettings, build_images, git_revision
    from infra.stack.processes import open_log

    pipeline_tag = tag if step == "pipeline" else ""
    settings = ImageSettings(pipeline_tag=pipeline_tag, serving_tag="", revision=git_revision())
    with open_log(log) as out:
        out.write(f"\n=== {time.strftime('%F %T')} dove stack: build {tag}\n".encode())
        try:
            build_images(engine, settings, [step], lambda built: None)
        except (ConfigError, OSError) as exc:
            out.write(f"{exc}\n".encode())
            return False
        out.write(b"built\n")
    return True


def remove(engine, name: str, stop_timeout: int = STOP_TIMEOUT_S) -> None:
    """Stop the container (SIGTERM, SIGKILL after ``stop_timeout``) and remove it; a missing
    one is fine."""
    engine.run("stop", "--time", str(stop_timeout), name, check=False, timeout=stop_timeout + 60)
    engine.run("rm", "--force", name, check=False, timeout=120)


def running_names(engine, prefix: str = "dove-stack-") -> set[str]:
    """The names of the stack's containers the engine runs now (any state folder)."""
    done = engine.run("ps", "--all", "--format", "{{.Names}}", check=False, timeout=60)
    return (
        {n for n in done.stdout.split() if n.startswith(prefix)} if done.returncode == 0 else set()
    )
