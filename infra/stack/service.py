"""The BentoML retrieval service serving ``@champion``, the way ``dove deploy`` and
``dove serve`` run it: the champion imported into the stack's BentoML store, the project's
archive indexed with it, then ``bentoml serve service:DoveRetrieval`` on 127.0.0.1.

It starts only once the registry has a champion; until then ``up`` records why it is not
deployed and says how to get one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from infra.stack.config import LOOPBACK, Layout, StackError
from infra.stack.environment import venv_bin
from infra.stack.processes import open_log


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def indexed_version(index_root: Path) -> str | None:
    """The MLflow version of the model that built the index the service would load."""
    from dove_model.errors import DoveError
    from dove_model.index.archive import read_meta
    from dove_model.index.versions import current_index_dir

    try:
        folder, _ = current_index_dir(index_root)
        model = read_meta(folder).get("model") or {}
    except (DoveError, OSError):
        return None
    version = model.get("model_version")
    return str(version) if version is not None else None


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
    base: dict[str, str], layout: Layout, params_file: Path, index_root: Path
) -> dict[str, str]:
    from dove_model.serving.launch import serving_env

    return serving_env(
        params_file=params_file,
        index_dir=index_root,
        bentoml_home=layout.bentoml_home,
        base=base,
    )


def is_ready(port: int) -> bool:
    try:
        return httpx.get(f"{url(port)}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False
