"""Run the KFP pipeline: locally with KFP's SubprocessRunner, or submitted to an endpoint."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dove_model.config import Params
from dove_model.errors import DoveError, GateFailed
from dove_model.registry.tracking import TRACKING_ENV, resolve_tracking_uri

ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


def pipeline_data_version(params: Params, root: Path | None = None) -> str:
    """The data version to pass to a run: DVC's md5 of data.dvc where DVC tracks the data,
    else a hash of the data section (the synthetic data is a pure function of it)."""
    import yaml

    root = root or Path.cwd()
    dvc_file = root / "data.dvc"
    if dvc_file.is_file():
        outs = (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("outs") or []
        md5 = next((o.get("md5") for o in outs if isinstance(o, dict) and o.get("md5")), None)
        if md5:
            return str(md5)
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
    """The outcome of a local pipeline run."""

    data_version: str
    gate: str  # the evaluation floors: passed | failed
    promoted: bool
    registration: dict | None
    outputs_root: Path

    def summary(self) -> str:
        lines = [f"pipeline finished: data version {self.data_version}, floors {self.gate}"]
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


def run_local(
    params: Params,
    params_file: Path,
    *,
    data_version: str | None = None,
    root: Path | None = None,
) -> LocalRun:
    """Execute the pipeline for real with ``kfp.local.SubprocessRunner`` in this venv."""
    from kfp import local

    from components.pipeline import build_pipeline

    root = (root or Path.cwd()).resolve()
    version = data_version or pipeline_data_version(params, root)
    outputs_root = root / params.pipeline.local_root
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(outputs_root),
        raise_on_error=True,
    )
    pipeline = build_pipeline(params.pipeline)
    started = time.time()
    with _tracking_env(params, root), contextlib.chdir(root):
        try:
            pipeline(data_version=version, params_yaml=_params_text(params_file))
        except RuntimeError as exc:
            message = ANSI_CODES.sub("", str(exc))
            failed = GateFailed if "'validate'" in message else DoveError
            raise failed(f"{outputs_root}: {message}") from None
    return _collect(version, outputs_root, started)


def _collect(version: str, outputs_root: Path, started: float) -> LocalRun:
    """Read what this run left: the registration summary, if register ran."""
    runs = [p for p in outputs_root.glob("*/") if p.stat().st_mtime >= started - 1]
    latest = max(runs, key=lambda p: p.stat().st_mtime) if runs else outputs_root
    found = sorted(latest.glob("register/registration"))
    registration = json.loads(found[0].read_text(encoding="utf-8")) if found else None
    gate = "passed" if registration is not None else "failed"
    promoted = bool(registration and registration.get("promoted"))
    return LocalRun(version, gate, promoted, registration, latest)


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
