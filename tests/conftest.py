"""Shared test fixtures. Telemetry is off for every service the tests start."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"

for _var, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_var, _value)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs one worker per core) each worker, and every
    process it starts (KFP components, DVC stages, Airflow tasks), gets its share of the cores
    rather than a thread per core each: OpenMP threads spin while they wait, so oversubscribed
    cores lose time."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        share = max(1, (os.cpu_count() or 1) // int(workers))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(share))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The real benchmark data beside the repository; skip where it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS} (../shared is absent)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def ucm_dir(shared_datasets: Path) -> Path:
    path = shared_datasets / "ucm-captions"
    if not (path / "dataset.json").is_file():
        pytest.skip(f"UCM-Captions not found at {path}")
    return path


@pytest.fixture(scope="session")
def _smoke_trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke project (tiny synthetic data) with a model trained for one epoch, made once."""
    import contextlib

    import torch

    from dove_model.config import load_params
    from dove_model.data.prepare import prepare
    from dove_model.families.dispatch import train
    from dove_model.testing.smoke import write_smoke_project

    root = tmp_path_factory.mktemp("smoke-trained")
    params = load_params(write_smoke_project(root))
    torch.set_num_threads(1)
    with contextlib.chdir(root):
        dataset = prepare(params, progress=False)
        train(dataset, params, Path(params.train.out_dir), progress=False)
    return root


@pytest.fixture(scope="module")
def smoke_trained(_smoke_trained_once: Path, tmp_path_factory: pytest.TempPathFactory):
    """A private copy of the trained smoke project (every path in it is relative)."""
    import shutil

    from dove_model.config import load_params

    root = tmp_path_factory.mktemp("smoke-copy") / "project"
    shutil.copytree(_smoke_trained_once, root)
    return root, load_params(root / "params.yaml")


@pytest.fixture(scope="session")
def synthetic_deployment(tmp_path_factory: pytest.TempPathFactory):
    """A deployed tiny archive (model in a BentoML store, FAISS index), shared read-only by
    the service, load and browser tests."""
    from dove_model.testing.deployment import deploy_synthetic

    return deploy_synthetic(tmp_path_factory.mktemp("deployment"))


@contextlib.contextmanager
def running_mlflow_server(
    home: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite store in ``home``); yields its URL and
    stops its whole process group afterwards."""
    from dove_model.serving.launch import free_port

    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        *args,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination", str(home / "artifacts"),
        "--workers", "1",
    ]  # fmt: skip
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=home,
        env=dict(os.environ if env is None else env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(home / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()


@pytest.fixture(scope="session")
def start_mlflow_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with start_mlflow_server(home, args=..., env=...) as url:`` (see running_mlflow_server)."""
    return running_mlflow_server


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` (sqlite store, served artifacts) for the module's tests."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), timeout=120) as url:
        yield url


@pytest.fixture(scope="session")
def container_engine():
    """The installed container engine (`make test` installs podman); skip where none is."""
    from dove_model.errors import ConfigError
    from infra.images.engine import find_engine

    try:
        return find_engine()
    except ConfigError as exc:
        pytest.skip(str(exc))


def _build_images(*args: str, env: Mapping[str, str] | None = None) -> str:
    """``dove images build ARGS`` in the checkout, one build at a time across test workers
    (one engine store; the second build of the same image is the engine's cache)."""
    from filelock import FileLock

    with FileLock(Path(tempfile.gettempdir()) / "dove-images-build.lock"):
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dove")), "images", "build", *args],
            cwd=REPO_ROOT,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=2400,
            check=False,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="session")
def build_images() -> Callable[..., str]:
    """``build_images("pipeline")``: run `dove images build` (see _build_images)."""
    return _build_images
