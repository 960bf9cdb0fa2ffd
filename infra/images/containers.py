"""Run one of the project's images as a detached container and stop it cleanly.

Ports are published on 127.0.0.1 only; the container is removed when it stops.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from dove_model.errors import DoveError
from infra.images.engine import Engine


@dataclass(frozen=True)
class Container:
    engine: Engine
    name: str
    url: str | None

    def logs(self, tail: int = 80) -> str:
        done = self.engine.run("logs", "--tail", str(tail), self.name, check=False)
        return done.stdout + done.stderr

    def exec(self, *command: str) -> tuple[int, str]:
        done = self.engine.run("exec", self.name, *command, check=False)
        return done.returncode, (done.stdout + done.stderr).strip()

    def inspect(self) -> dict:
        done = self.engine.run("inspect", self.name)
        return json.loads(done.stdout)[0]

    def wait_http(self, path: str, timeout: float = 180.0) -> None:
        """Poll ``path`` until it answers 200; raise with the logs when the container dies."""
        assert self.url is not None, "no port published"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=5).status_code == 200:
                    return
            state = self.engine.run(
                "inspect", "--format", "{{.State.Running}}", self.name, check=False
            )
            if state.stdout.strip() != "true":
                raise DoveError(f"container {self.name} stopped:\n{self.logs()}")
            time.sleep(1)
        raise DoveError(
            f"container {self.name}: {path} not ready in {timeout:.0f} s:\n{self.logs()}"
        )


@contextlib.contextmanager
def running_container(
    engine: Engine,
    image: str,
    *,
    port: int | None = None,
    container_port: int = 3000,
    env: Mapping[str, str] | None = None,
    mounts: Sequence[str] = (),
    options: Sequence[str] = (),
    command: Sequence[str] = (),
) -> Iterator[Container]:
    """``engine run -d`` of ``image`` (``port`` published on 127.0.0.1); stopped and removed
    afterwards. ``mounts`` are ``-v`` values, ``options`` any other run flags."""
    name = f"dove-{uuid.uuid4().hex[:10]}"
    args = ["run", "-d", "--rm", "--name", name, *options]
    if port is not None:
        args += ["-p", f"127.0.0.1:{port}:{container_port}"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    for mount in mounts:
        args += ["-v", mount]
    engine.run(*args, image, *command)
    url = f"http://127.0.0.1:{port}" if port is not None else None
    try:
        yield Container(engine, name, url)
    finally:
        engine.run("stop", "--time", "20", name, check=False)
        engine.run("rm", "--force", name, check=False)
