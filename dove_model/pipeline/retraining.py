"""The work behind the Airflow retraining DAG (dags/dove_retraining.py).

Each function is idempotent: the registry is the record of what already happened, keyed by
the data version the run was asked for (tag ``pipeline_data_version`` on the model version).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from dove_model.config import Params, load_params
from dove_model.errors import DoveError
from dove_model.registry.register import RUN_KEY_TAG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionGate:
    """The model version a pipeline run registered for one data version, and its gate."""

    data_version: str
    model_version: str | None
    gate: str  # passed | failed | missing (nothing registered: floors failed)

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def _params(project_root: str, params_file: str) -> tuple[Params, Path]:
    root = Path(project_root).resolve()
    return load_params(root / params_file), root


def detect_data_version(project_root: str, params_file: str = "params.yaml") -> str:
    from dove_model.pipeline.run import pipeline_data_version

    params, root = _params(project_root, params_file)
    return pipeline_data_version(params, root)


def find_registered(params: Params, root: Path, data_version: str) -> VersionGate:
    """The newest version registered for ``data_version`` (by run key), if any."""
    from mlflow import MlflowClient

    from dove_model.registry.tracking import configure

    uri = configure(params.register_, root)
    client = MlflowClient(uri, uri)
    name = params.register_.model_name
    query = f"name = '{name}' and tag.{RUN_KEY_TAG} = '{data_version}'"
    found = client.search_model_versions(query)
    if not found:
        return VersionGate(data_version, None, "missing")
    newest = max(found, key=lambda v: int(v.version))
    return VersionGate(data_version, str(newest.version), newest.tags.get("gate", "missing"))


def run_pipeline(
    project_root: str, params_file: str, data_version: str, kfp_host: str | None = None
) -> dict[str, str | None]:
    """Run the KFP pipeline (the endpoint when given, else locally) unless a model version
    for this data version is already registered."""
    params, root = _params(project_root, params_file)
    done = find_registered(params, root, data_version)
    if done.model_version is not None:
        log.info("data version %s: v%s exists, not re-running", data_version, done.model_version)
        return done.as_dict()
    if kfp_host:
        import kfp

        from dove_model.pipeline.run import submit

        run_id = submit(params, root / params_file, kfp_host, data_version=data_version, root=root)
        run = kfp.Client(host=kfp_host).wait_for_run_completion(run_id, timeout=24 * 3600)
        if str(run.state).upper() not in ("SUCCEEDED", "SKIPPED"):
            raise DoveError(f"KFP run {run_id} on {kfp_host} ended in state {run.state}")
    else:
        from dove_model.pipeline.run import run_local

        run_local(params, root / params_file, data_version=data_version, root=root)
    return find_registered(params, root, data_version).as_dict()


def promote_if_gated(project_root: str, params_file: str, model_version: str) -> list[str]:
    """Make the version champion (a no-op when it already is); refuses a failed gate."""
    from dove_model.registry import promote

    params, root = _params(project_root, params_file)
    return [str(change) for change in promote(params, model_version, root=root)]


def roll_service(project_root: str, params_file: str) -> dict[str, str]:
    """Import the champion into the BentoML store and rebuild the index with it: the service
    serves this on its next (rolling) restart."""
    from dove_model.data.prepare import prepare, prepared_dataset_dir
    from dove_model.serving.deploy import deploy

    params, root = _params(project_root, params_file)
    with contextlib.chdir(root):  # params hold paths relative to the project
        dataset = prepared_dataset_dir(params.data)
        if not (dataset / "manifest.parquet").is_file():
            dataset = prepare(params, progress=False)
        deployment = deploy(params, dataset.resolve(), root=root, progress=False)
    return {"model_tag": deployment.model.tag, "index_dir": str(deployment.index_dir)}
