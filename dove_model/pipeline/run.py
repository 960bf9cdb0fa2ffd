"""Run the KFP pipeline: locally with KFP's SubprocessRunner, or submitted to an endpoint.

The pipeline itself is built in ``components/`` (a layer above the library): ``run_local``
takes its builder as an argument, and ``submit`` sends the compiled YAML.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dove_model.config import Params
from dove_model.errors import DataFormatError, DoveError
from dove_model.pipeline.failures import read_failures
from dove_model.registry.gates import GateVerdict
from dove_model.registry.tracking import TRACKING_ENV, resolve_tracking_uri

ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")  # KFP colours its log lines

# What builds the KFP pipeline function: ``components.pipeline.build_pipeline``, called with
# ``params.pipeline`` and ``shards=params.index.shards``. The library takes it as an argument
# so that it never imports the top-level ``components`` package.
PipelineBuilder = Callable[..., Any]


def pipeline_data_version(params: Params, root: Path | None = None) -> str:
    """The data version to pass to a run: DVC's md5 of data.dvc where DVC tracks the data,
    else a hash of the data section (the synthetic data is a pure function of it)."""
    from dove_model.data.versioning import DATA_TARGET, data_version

    root = root or Path.cwd()
    if (root / f"{DATA_TARGET}.dvc").is_file():
        with contextlib.suppress(DataFormatError):  # not a DVC file we can read: the params
            return data_version(root)
    text = json.dumps(params.data.model_dump(mode="json"), sort_keys=True)
    return "params-" + hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@contextlib.contextmanager
def _tracking_env(params: Params, root: Path) -> Iterator[str]:
    """Pin the resolved tracking URI for the task subprocesses, then restore the env."""
    uri = resolve_tracking_uri(params.register_, root)
    before = os.environ.get(TRACKING_ENV)
    os.environ[TRACKING_ENV] = uri
    try:
        yield uri
    finally:
        if before is None:
            os.environ.pop(TRACKING_ENV, None)
        else:
            os.environ[TRACKING_ENV] = before


@dataclass(frozen=True)
class LocalRun:
    """The outcome of a local pipeline run: what its register task recorded."""

    data_version: str
    registration: dict | None
    outputs_root: Path

    @property
    def verdict(self) -> GateVerdict:
        """``passed`` when the registered version became champion."""
        return GateVerdict.of(bool(self.registration and self.registration.get("promoted")))

    def summary(self) -> str:
        lines = [f"pipeline finished: data version {self.data_version}, gate {self.verdict}"]
        if self.registration:
            reg = self.registration
            lines.append(f"registered {reg['model_uri']}: {reg['gate']}")
            lines += [f"  {change}" for change in reg["alias_changes"]]
        lines.append(f"outputs under {self.outputs_root}")
        return "\n".join(lines)


def _params_text(params_file: Path) -> str:
    try:
        return Path(params_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise DoveError(f"{params_file}: cannot read ({exc.strerror})") from None


def _run_dirs(outputs_root: Path) -> set[Path]:
    return {p for p in outputs_root.iterdir() if p.is_dir()} if outputs_root.is_dir() else set()


def _new_run_dir(outputs_root: Path, before: set[Path]) -> Path:
    """The folder KFP's local runner made for this run (the newest new one)."""
    new = _run_dirs(outputs_root) - before
    return max(new, key=lambda p: p.stat().st_mtime) if new else outputs_root


def _failure(run_dir: Path, exc: RuntimeError) -> DoveError:
    """The error a failed run stands for: the one its failed task recorded, with that task's
    exception class (a failed data gate stays GateFailed); else a DoveError naming the run."""
    recorded = read_failures(run_dir)
    if recorded:
        return recorded[0].error()
    return DoveError(f"{run_dir}: the pipeline failed ({ANSI_CODES.sub('', str(exc))})")


# what a component container needs from the caller's environment (the tracking URI is set
# by _tracking_env; credentials for a tracking server pass through when set)
CONTAINER_ENV = (
    TRACKING_ENV,
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "BENTOML_HOME",
    "OMP_NUM_THREADS",
)


def docker_runner(root: Path) -> Any:
    """KFP's ``DockerRunner``: each component in its own container of ``pipeline.image``, the
    project folder mounted at its own path as the working directory (relative paths in
    params.yaml resolve as under the SubprocessRunner), the host's network (a tracking server
    on 127.0.0.1) and the caller's uid (files it writes stay the caller's). The Docker API is
    ``DOCKER_HOST`` (podman's compatible socket works: ``dove pipeline run --runner docker``
    starts one)."""
    from docker.types import Mount
    from kfp import local

    environment = {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    environment |= {name: os.environ[name] for name in CONTAINER_ENV if name in os.environ}
    return local.DockerRunner(
        mounts=[Mount(target=str(root), source=str(root), type="bind")],
        working_dir=str(root),
        user=f"{os.getuid()}:{os.getgid()}",
        network_mode="host",
        environment=environment,
    )


def run_local(
    build: PipelineBuilder,
    params: Params,
    params_file: Path,
    *,
    data_version: str | None = None,
    root: Path | None = None,
    runner: str = "subprocess",
) -> LocalRun:
    """Execute the pipeline that ``build`` makes (``components.pipeline.build_pipeline``)
    for real with KFP's local runner: ``subprocess`` (``SubprocessRunner`` in this venv) or
    ``docker`` (``DockerRunner``: each component in a container of ``pipeline.image``)."""
    from kfp import local

    if runner not in ("subprocess", "docker"):
        raise DoveError(f"runner {runner!r}: use subprocess or docker")
    root = (root or Path.cwd()).resolve()
    version = data_version or pipeline_data_version(params, root)
    outputs_root = root / params.pipeline.local_root
    pipeline = build(params.pipeline, shards=params.index.shards)
    before = _run_dirs(outputs_root)
    with _tracking_env(params, root), contextlib.chdir(root):
        local.init(
            runner=local.SubprocessRunner(use_venv=False)
            if runner == "subprocess"
            else docker_runner(root),
            pipeline_root=str(outputs_root),
            raise_on_error=True,
        )
        try:
            pipeline(data_version=version, params_yaml=_params_text(params_file))
        except RuntimeError as exc:  # KFP's local runner: a task failed
            raise _failure(_new_run_dir(outputs_root, before), exc) from None
    return _collect(version, _new_run_dir(outputs_root, before))


def _collect(version: str, run_dir: Path) -> LocalRun:
    """Read what this run left: the registration summary, if register ran."""
    found = sorted(run_dir.glob("register/registration"))
    registration = json.loads(found[0].read_text(encoding="utf-8")) if found else None
    return LocalRun(version, registration, run_dir)


def submit(
    params: Params,
    params_file: Path,
    host: str,
    *,
    data_version: str | None = None,
    root: Path | None = None,
) -> str:
    """Submit the compiled pipeline, with its Kubernetes platform config (GPU toleration,
    endpoints, S3 credentials), to a KFP endpoint; returns the run id."""
    import tempfile

    import kfp

    from dove_model.pipeline.platform import build_package

    root = (root or Path.cwd()).resolve()
    with tempfile.TemporaryDirectory(prefix="dove-kfp-") as tmp:
        package = build_package(params, root, Path(tmp) / "pipeline.yaml")
        client = kfp.Client(host=host)
        run = client.create_run_from_pipeline_package(
            str(package),
            arguments={
                "data_version": data_version or pipeline_data_version(params, root),
                "params_yaml": _params_text(params_file),
            },
            enable_caching=True,
        )
    return str(run.run_id)
