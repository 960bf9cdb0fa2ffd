"""Test support for the feedback loop: a served deployment whose query log lands in a folder
the test reads."""

from __future__ import annotations

from pathlib import Path

from dove_model.testing.deployment import DemoDeployment


def feedback_env(
    deployment: DemoDeployment,
    log_dir: Path,
    *,
    api_key: str | None = None,
    params_file: Path | None = None,
) -> dict[str, str]:
    """The service's environment for ``deployment`` (model from its BentoML store), the query
    log in ``log_dir``; open to all without ``api_key``."""
    from dove_model.serving.launch import serving_env

    env = serving_env(
        params_file=params_file,
        model_tag=deployment.model_tag,
        index_dir=deployment.index_dir,
        bentoml_home=deployment.bentoml_home,
        api_key=api_key,
    )
    env.pop("DOVE_MODEL_DIR", None)
    if api_key is None:
        env.pop("DOVE_API_KEY", None)
    env["DOVE_QUERYLOG_DIR"] = str(log_dir)
    return env
