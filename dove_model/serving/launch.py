"""Start, probe and stop ``bentoml serve service:DoveRetrieval`` as a child process.

Used by ``dove serve``, ``make demo`` (dove_model/demo.py) and the integration tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dove_model.errors import DoveError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where service.py and bentofile.yaml live
SERVICE = "service:DoveRetrieval"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serving_env(
    *,
    params_file: Path | None = None,
    model_dir: Path | None = None,
    model_tag: str | None = None,
    index_dir: Path | None = None,
    api_key: str | None = None,
    bentoml_home: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment the service resolves its settings from (see serving.settings)."""
    env = dict(os.environ if base is None else base)
    env.update({"BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "1"})
    # glibc: fewer malloc arenas, so memory freed after a large decode goes back to the OS
    env.setdefault("MALLOC_ARENA_MAX", "2")
    for name, value in (
        ("DOVE_PARAMS", params_file),
        ("DOVE_MODEL_DIR", model_dir),
        ("DOVE_MODEL_TAG", model_tag),
        ("DOVE_INDEX_DIR", index_dir),
        ("DOVE_API_KEY", api_key),
        ("BENTOML_HOME", bentoml_home),
    ):
        if value is not None:
            env[name] = str(Path(value).resolve()) if isinstance(value, Path) else str(value)
    return env


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_file: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def page_url(self) -> str:
        return f"{self.url}/ui/"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Poll /readyz until the model and index are loaded; raise if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DoveError(
                    f"the service exited with code {self.process.returncode}: {self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise DoveError(f"the service at {self.url} was not ready after {timeout:.0f} s")

    def log_tail(self, chars: int = 2000) -> str:
        if self.log_file is None or not self.log_file.is_file():
            return ""
        return self.log_file.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the whole process group (bentoml forks workers), then SIGKILL."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
            except ProcessLookupError:
                pass


def start_service(
    env: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_file: Path | None = None,
    project_root: Path = PROJECT_ROOT,
    target: str = SERVICE,
) -> ServiceProcess:
    """``bentoml serve`` in its own process group (so stop() ends its workers too).

    ``target`` is the service import string (default) or a built Bento's tag.
    """
    port = port or free_port(host)
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        target,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if target == SERVICE:
        command += ["--working-dir", str(project_root)]
    out = log_file.open("ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        command,
        cwd=project_root,
        env=dict(env),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return ServiceProcess(process=process, url=f"http://{host}:{port}", log_file=log_file)


@contextlib.contextmanager
def running_service(
    env: Mapping[str, str], *, log_file: Path | None = None, ready_timeout: float = 180.0, **kwargs
) -> Iterator[ServiceProcess]:
    """Start the service, wait until ``/readyz`` answers, and always stop it afterwards.

    BentoML's process manager binds a control port it picked as free a moment earlier; when
    another process takes it in between, the server exits at once ("Address already in
    use"): that start is tried again, twice at most, with a new pick."""
    for attempt in range(3):
        proc = start_service(env, log_file=log_file, **kwargs)
        try:
            proc.wait_ready(timeout=ready_timeout)
            break
        except DoveError:
            proc.stop()
            if attempt == 2 or "Address already in use" not in proc.log_tail(20_000):
                raise
    try:
        yield proc
    finally:
        proc.stop()


def example_query(url: str, query: str, k: int = 5, api_key: str | None = None) -> list[dict]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.post(
        f"{url}/search_images", json={"query": query, "k": k}, headers=headers, timeout=30
    )
    response.raise_for_status()
    return list(response.json()["results"])


def print_example(url: str, query: str, k: int = 5, api_key: str | None = None) -> None:
    print(f"example query {query!r}: top {k}")
    for rank, hit in enumerate(example_query(url, query, k, api_key), start=1):
        label = f" [{hit['label']}]" if hit.get("label") else ""
        print(f"  {rank}. {hit['image_id']}{label}  score {hit['score']:.4f}")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_keyboard_interrupt)


def serve_forever(
    env: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    example: str | None = None,
) -> None:
    """Start the service, print the page URL (and an example query), run until Ctrl-C.

    SIGTERM and SIGINT both stop the service cleanly: it runs in its own session, so without
    this a ``kill`` (or a shell that started us with SIGINT ignored) would orphan it.
    """
    _stop_on_signals()
    service = start_service(env, host=host, port=port)
    try:
        service.wait_ready()
        print(f"search page: {service.page_url}")
        if example:
            print_example(service.url, example, api_key=env.get("DOVE_API_KEY"))
        print("press Ctrl-C to stop")
        service.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
