"""The work behind the Airflow retraining DAG (dags/dove_retraining.py).

Each function is idempotent: the registry is the record of what already happened, keyed by
the data version the run was asked for (tag ``pipeline_data_version`` on the model version).
The gate is read from the registry (the register stage's verdict), never re-applied here.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dove_model.config import Params, load_params
from dove_model.errors import DoveError
from dove_model.registry.gates import GateVerdict
from dove_model.registry.register import GATE_TAG, RUN_KEY_TAG

if TYPE_CHECKING:
    import pandas as pd

    from dove_model.pipeline.run import PipelineBuilder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionGate:
    """The model version a pipeline run registered for one data version, and its gate."""

    data_version: str
    model_version: str | None  # None: nothing registered for this data version yet
    gate: GateVerdict | None  # the register stage's verdict (tag ``gate``)

    def as_dict(self) -> dict[str, str | None]:
        """Plain strings (an Airflow XCom): the gate as its value, ``None`` when missing."""
        return asdict(self) | {"gate": self.gate.value if self.gate else None}


def _params(project_root: str, params_file: str) -> tuple[Params, Path]:
    root = Path(project_root).resolve()
    return load_params(root / params_file), root


def detect_data_version(project_root: str, params_file: str = "params.yaml") -> str:
    """The data version this run retrains on. Where DVC tracks the data, ``data.dvc`` must
    be readable: one caught mid-rewrite (truncated) or left with merge-conflict markers is a
    DataFormatError, so the task fails and Airflow retries it, instead of the run training
    under the params' hash (``pipeline_data_version``'s fallback for projects without DVC)."""
    from dove_model.data.versioning import DATA_TARGET, data_version
    from dove_model.pipeline.run import pipeline_data_version

    params, root = _params(project_root, params_file)
    if (root / f"{DATA_TARGET}.dvc").exists():
        return data_version(root)
    return pipeline_data_version(params, root)


def has_champion(project_root: str, params_file: str = "params.yaml") -> bool:
    """Whether the registered model has a champion (none: there is nothing to roll out)."""
    from dove_model.registry import alias_state

    params, root = _params(project_root, params_file)
    return alias_state(params, root=root)["champion"] is not None


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
        return VersionGate(data_version, None, None)
    newest = max(found, key=lambda v: int(v.version))
    tag = newest.tags.get(GATE_TAG)
    gate = GateVerdict(tag) if tag in set(GateVerdict) else None
    return VersionGate(data_version, str(newest.version), gate)


def _run_on_endpoint(
    params: Params, root: Path, params_file: str, data_version: str, host: str
) -> None:
    """Submit the compiled pipeline to ``host`` and wait for it to finish."""
    import kfp

    from dove_model.pipeline.run import submit

    run_id = submit(params, root / params_file, host, data_version=data_version, root=root)
    run = kfp.Client(host=host).wait_for_run_completion(run_id, timeout=24 * 3600)
    if str(run.state).upper() not in ("SUCCEEDED", "SKIPPED"):
        raise DoveError(f"KFP run {run_id} on {host} ended in state {run.state}")


def run_pipeline(
    project_root: str,
    params_file: str,
    data_version: str,
    kfp_host: str | None = None,
    *,
    build: PipelineBuilder | None = None,
) -> dict[str, str | None]:
    """Run the KFP pipeline (the endpoint when given, else locally with the pipeline that
    ``build`` makes) unless a model version for this data version is already registered."""
    params, root = _params(project_root, params_file)
    done = find_registered(params, root, data_version)
    if done.model_version is not None:
        log.info("data version %s: v%s exists, not re-running", data_version, done.model_version)
        return done.as_dict()
    if kfp_host:
        _run_on_endpoint(params, root, params_file, data_version, kfp_host)
    elif build is None:
        raise DoveError("a local pipeline run needs the pipeline builder (components.pipeline)")
    else:
        from dove_model.pipeline.run import run_local

        run_local(build, params, root / params_file, data_version=data_version, root=root)
    return find_registered(params, root, data_version).as_dict()


def promote_if_gated(project_root: str, params_file: str, model_version: str) -> list[str]:
    """Make the version champion (a no-op when it already is); refuses a failed gate. A
    version that was champion once and has been replaced since (by a newer champion, or by
    ``dove rollback``) is left alone: a run on an old data version (a retry, a re-trigger)
    never undoes a rollback or a later promotion."""
    from dove_model.registry import promote

    params, root = _params(project_root, params_file)
    if _replaced_champion(params, root, model_version):
        log.info("v%s was champion and has been replaced since: not promoted again", model_version)
        return []
    from dove_model.pipeline.feedback_signal import feedback_gate_refusal

    refusal = feedback_gate_refusal(params, root, model_version)  # the users' own pairs
    if refusal is not None:
        log.warning("v%s not promoted, feedback gate %s", model_version, refusal)
        return []
    return [str(change) for change in promote(params, model_version, root=root)]


def _replaced_champion(params: Params, root: Path, model_version: str) -> bool:
    """Whether ``model_version`` became champion once (tag ``promoted_over``) and is not now."""
    from mlflow import MlflowClient

    from dove_model.registry import aliases
    from dove_model.registry.tracking import configure

    uri = configure(params.register_, root)
    client = MlflowClient(uri, uri)
    name = params.register_.model_name
    version = aliases.require_version(client, name, model_version)
    champion = aliases.version_by_alias(client, name, aliases.CHAMPION)
    was_champion = aliases.PROMOTED_OVER_TAG in version.tags
    return was_champion and (champion is None or str(champion.version) != str(model_version))


def _prepared_dataset(params: Params) -> Path:
    """The dataset as the data source holds it now (what this run trained on), prepared
    again: a prepared folder left by an earlier data version would index old images."""
    from dove_model.data.prepare import prepare

    return prepare(params, progress=False).resolve()


def _incremental(params: Params, root: Path, dataset: Path) -> dict[str, str] | None:
    """``dove index add`` with the champion: None when the index needs a full rebuild (no
    index yet, or another model built it: the champion changed)."""
    import tempfile

    from dove_model.errors import ConfigError
    from dove_model.index.incremental import update_index
    from dove_model.pipeline.steps import download_champion_labelled

    index_dir = Path(params.index.out_dir)
    with tempfile.TemporaryDirectory(prefix="dove-champion-") as tmp:
        model_dir, labels = download_champion_labelled(params, Path(tmp), root=root)
        try:
            report = update_index(
                model_dir, index_dir, dataset, params, progress=False, versioned=True
            )
        except ConfigError as exc:  # RebuildNeededError, or no index to update
            log.info("no incremental update (%s)", exc)
            return None
    log.info("incremental: +%d -%d images", report.added, report.removed)
    return {
        "path": "incremental",
        "model_version": labels["model_version"],
        "index_dir": str(index_dir.resolve()),
        "added": str(report.added),
        "removed": str(report.removed),
        "kept": str(report.kept),
    }


def _same_rows(indexed: pd.DataFrame, wanted: pd.DataFrame, columns: list[str]) -> bool:
    if len(indexed) != len(wanted) or not set(columns) <= set(indexed.columns):
        return False
    return all(indexed[c].astype(str).tolist() == wanted[c].astype(str).tolist() for c in columns)


def _unchanged(params: Params, root: Path, dataset: Path) -> dict[str, str] | None:
    """The served index when it is already the roll-out's result (built by the champion from
    exactly this dataset: the same images by content, the same captions), else None. A
    re-run on an unchanged data version then writes no new index version."""
    import pandas as pd

    from dove_model.index.archive import read_meta
    from dove_model.index.build import resolve_source, with_content_hashes
    from dove_model.index.versions import current_index_dir
    from dove_model.registry import alias_state

    try:
        folder, version = current_index_dir(Path(params.index.out_dir))
        meta = read_meta(folder)
        images = pd.read_parquet(folder / "images.parquet")
        captions = pd.read_parquet(folder / "captions.parquet")
    except (DoveError, OSError):
        return None  # no index yet, or an unreadable one: the roll-out (re)builds it
    champion = alias_state(params, root=root)["champion"]
    model_version = str((meta.get("model") or {}).get("model_version"))
    source = resolve_source(dataset, params.index.splits)
    if champion != model_version or meta.get("images_root") != str(source.root):
        return None
    source = with_content_hashes(source)
    if not _same_rows(images, source.images, ["image_id", "path", "sha256"]):
        return None
    if not _same_rows(captions, source.captions, ["caption", "image_row"]):
        return None
    return {
        "path": "unchanged",
        "model_version": model_version,
        "index_dir": str(Path(params.index.out_dir).resolve()),
        "index_version": str(version),
        "n_images": str(len(images)),
    }


def roll_service(project_root: str, params_file: str) -> dict[str, str]:
    """Bring the service up to date with the champion and the current data. The index
    already built by the champion from this data: nothing to do (``unchanged``). The
    champion that built the service's index (the gate kept it, or only the data changed):
    encode just the new images (``dove index add``). A new champion (or no index yet): import
    it into the BentoML store and rebuild the index (a running service swaps model and index
    together on its next index poll). Returns which path ran (``path``: unchanged |
    incremental | full)."""
    from dove_model.serving.deploy import deploy

    params, root = _params(project_root, params_file)
    with contextlib.chdir(root):  # params hold paths relative to the project
        dataset = _prepared_dataset(params)
        current = _unchanged(params, root, dataset)
        if current is not None:
            log.info("index version %s is up to date: nothing to roll", current["index_version"])
            return current
        updated = _incremental(params, root, dataset)
        if updated is not None:
            return updated
        deployment = deploy(params, dataset, root=root, progress=False)
    version = deployment.model.labels.get("model_version", "?")
    log.info("full rebuild: new champion v%s", version)
    return {
        "path": "full",
        "model_version": version,
        "model_tag": deployment.model.tag,
        "index_dir": str(deployment.index_dir),
    }
