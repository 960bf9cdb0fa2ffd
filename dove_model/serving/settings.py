"""Where the service finds its parameters, model and index: resolved at start, never at import.

Environment variables (all optional):
    DOVE_PARAMS      parameter file (default ``params.yaml`` when present, else built-in defaults)
    DOVE_MODEL_TAG   BentoML store tag (default ``serve.model_tag``, ``dove-rs-retrieval:latest``)
    DOVE_MODEL_DIR   a model directory to load instead of the store (development, tests)
    DOVE_INDEX_DIR   the index folder (default ``index.out_dir``, ``artifacts/index``)
    DOVE_API_KEY     (name set by ``serve.api_key_env``) require this key on every API call
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dove_model.config import DEFAULT_PARAMS_FILE, Params, load_params


@dataclass(frozen=True)
class ServingConfig:
    params: Params
    model_tag: str
    model_dir: Path | None
    index_dir: Path
    api_key: str | None


def resolve_serving_config(env: Mapping[str, str]) -> ServingConfig:
    params_file = env.get("DOVE_PARAMS")
    if params_file:
        params = load_params(params_file)
    elif DEFAULT_PARAMS_FILE.is_file():
        params = load_params(DEFAULT_PARAMS_FILE)
    else:
        params = Params()
    model_dir = env.get("DOVE_MODEL_DIR")
    return ServingConfig(
        params=params,
        model_tag=env.get("DOVE_MODEL_TAG") or params.serve.model_tag,
        model_dir=Path(model_dir) if model_dir else None,
        index_dir=Path(env.get("DOVE_INDEX_DIR") or params.index.out_dir),
        api_key=env.get(params.serve.api_key_env) or None,
    )
