"""The BentoML retrieval service serving ``@champion``, the way ``dove deploy`` and
``dove serve`` run it: the champion imported into the stack's BentoML store, the project's
archive indexed with it, then ``bentoml serve service:DoveRetrieval`` on 127.0.0.1.

The service loads its model from the store by the tag the index names (never pinned to a
model folder), in the same store and index folder as the DAG's tasks: a roll-out of a new
champion (the DAG's ``roll_service``, ``dove deploy``) writes a new index version naming the
new model, and the running service swaps model and index together, without a restart.

It starts only once the registry has a champion; until then ``up`` records why it is not
deployed and says how to get one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from infra.stack.config import LOOPBACK, Layout, StackError
from infra.stack.environment import venv_bin
from infra.stack.processes import open_log


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def indexed_model(index_root: Path) -> dict[str, str]:
    """The index meta's ``model`` section of the current index version (``tag``,
    ``model_version``, ...): the model that built it; empty without a readable index."""
    from dove_model.errors import DoveError
    from dove_model.index.archive import read_meta
    from dove_model.index.versions import current_index_dir

    try:
        folder, _ = current_index_dir(index_root)
        model = read_meta(folder).get("model") or {}
    except (DoveError, OSError):
        return {}
    return {str(k): str(v) for k, v in model.items()}


def in_store(bentoml_home: Path, tag: str | None) -> bool:
    """Whether BentoML's model store holds ``name:version`` (its folder in the store)."""
    name, _, version = (tag or "").partition(":")
    if not name or not version or "/" in tag or ".." in tag:
        return False
    return (bentoml_home / "models" / name / version).is_dir()


def served(port: int) -> dict[str, Any] | None:
    """The service's ``/info`` (model version, fingerprint, index version, images), or None."""
    try:
        response = httpx.post(f"{url(port)}/info", json={}, timeout=10)
    except httpx.HTTPError:
        return None
    return dict(response.json()) if response.status_code == 200 else None


def deploy(project: Path, params_file: Path, env: dict[str, str], log: Path) -> None:
    """``dove deploy``: import ``@champion`` into the store and index the archive."""
    with open_log(log) as out:
        done = subprocess.run(
            [str(venv_bin() / "dove"), "deploy", "--params", str(params_file)],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=3600,
            check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise StackError(f"dove deploy of @champion failed (exit {done.returncode}): read {log}")


def command(port: int) -> tuple[list[str], Path]:
    """``bentoml serve`` of the project's service, and the folder it must run in."""
    import sys

    from dove_model.serving.launch import PROJECT_ROOT, SERVICE

    serve = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", LOOPBACK]
    return [*serve, "--port", str(port), "--working-dir", str(PROJECT_ROOT)], PROJECT_ROOT


def serve_env(
    base: dict[str, str], layout: Layout, params_file: Path, index_root: Path, model_tag: str
) -> dict[str, str]:
    """The model by its tag in the stack's store (``DOVE_MODEL_TAG``; ``base`` holds no
    ``DOVE_MODEL_DIR``: a pinned service would refuse every new champion's index)."""
    from dove_model.serving.launch import serving_env

    return serving_env(
        params_file=params_file,
        model_tag=model_tag,
        index_dir=index_root,
        bentoml_home=layout.bentoml_home,
        base=base,
    )


def is_ready(port: int) -> bool:
    try:
        return httpx.get(f"{url(port)}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False
