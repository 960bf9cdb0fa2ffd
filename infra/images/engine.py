"""Which container engine builds and runs the images, and how to call it.

docker where its daemon answers, else podman, else buildah (builds only); ``DOVE_CONTAINER_
ENGINE`` picks one. Podman runs with the project's ``infra/containers/containers.conf``
(Debian's ``runc`` as the OCI runtime and explicit ulimits: the default ``crun`` fails on hosts
with hybrid cgroups, and the default ulimits cannot be raised in some sandboxes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dove_model.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO_ROOT / "infra" / "containers" / "containers.conf"
ENGINES = ("docker", "podman", "buildah")


@dataclass(frozen=True)
class Engine:
    """One container engine: its name, its binary and the environment it runs with."""

    name: str
    binary: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def can_run(self) -> bool:
        """buildah builds images but does not run containers."""
        return self.name != "buildah"

    def command(self, *args: str) -> list[str]:
        return [self.binary, *args]

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def run(
        self, *args: str, timeout: float | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the engine with ``args``; a failure is a ConfigError with its output's tail."""
        done = subprocess.run(
            self.command(*args),
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            tail = (done.stdout + done.stderr)[-3000:]
            raise ConfigError(f"`{self.name} {' '.join(args[:3])} ...` failed:\n{tail}")
        return done

    def image_exists(self, tag: str) -> bool:
        inspect = ("image", "exists", tag) if self.name == "podman" else ("image", "inspect", tag)
        if self.name == "buildah":
            inspect = ("inspect", "--type", "image", tag)
        return self.run(*inspect, check=False).returncode == 0


def _engine(name: str, binary: str) -> Engine:
    env = {"CONTAINERS_CONF": str(CONTAINERS_CONF)} if name in {"podman", "buildah"} else {}
    return Engine(name, binary, env)


def _docker_daemon_answers(binary: str) -> bool:
    try:
        done = subprocess.run([binary, "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def find_engine(preferred: str | None = None, environ: Mapping[str, str] | None = None) -> Engine:
    """The engine to use: ``preferred``, else ``DOVE_CONTAINER_ENGINE``, else the first of
    docker (its daemon answering), podman, buildah found on PATH."""
    env = os.environ if environ is None else environ
    wanted = preferred or env.get("DOVE_CONTAINER_ENGINE") or None
    if wanted is not None and wanted not in ENGINES:
        raise ConfigError(f"container engine {wanted!r}: use one of {', '.join(ENGINES)}")
    for name in (wanted,) if wanted else ENGINES:
        binary = shutil.which(name)
        if binary is None or (name == "docker" and not _docker_daemon_answers(binary)):
            continue
        return _engine(name, binary)
    raise ConfigError(
        f"no container engine: {wanted or 'docker (with a running daemon), podman or buildah'}"
        " not found. `make images` installs Debian's podman, runc, buildah and mmdebstrap"
        " (apt-get install podman runc buildah mmdebstrap)."
    )


def build_args(pairs: Mapping[str, str]) -> list[str]:
    return [arg for key, value in pairs.items() for arg in ("--build-arg", f"{key}={value}")]


@contextlib.contextmanager
def docker_api(engine: Engine | None = None, timeout: float = 30.0) -> Iterator[str]:
    """A Docker-compatible API for clients of the Docker SDK (KFP's ``DockerRunner``): the
    caller's ``DOCKER_HOST`` when set, docker's own daemon when it answers, else podman's
    compatible socket (``podman system service``) started for the duration. Yields the
    ``DOCKER_HOST`` value and sets it in ``os.environ`` meanwhile."""
    if os.environ.get("DOCKER_HOST"):
        yield os.environ["DOCKER_HOST"]
        return
    engine = engine or find_engine()
    if engine.name == "docker":
        yield ""
        return
    if engine.name != "podman":
        raise ConfigError(f"{engine.name} has no Docker-compatible API: install podman or docker")
    with tempfile.TemporaryDirectory(prefix="dove-podman-") as tmp:
        socket = Path(tmp) / "podman.sock"
        host = f"unix://{socket}"
        service = subprocess.Popen(
            engine.command("system", "service", "--time=0", host),
            env=engine.environ(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for_socket(socket, service, timeout)
            os.environ["DOCKER_HOST"] = host
            yield host
        finally:
            os.environ.pop("DOCKER_HOST", None)
            service.terminate()
            try:
                service.wait(15)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait(5)


def _wait_for_socket(socket: Path, service: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not socket.exists():
        if service.poll() is not None or time.monotonic() > deadline:
            raise ConfigError(f"podman's API socket did not start (exit {service.poll()})")
        time.sleep(0.2)
