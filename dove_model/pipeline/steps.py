"""What each KFP component runs inside its container: the stage functions plus the
plumbing between KFP artifact paths and the canonical layout.

Every step takes ``params_yaml``, the text of params.yaml (empty: the params.yaml in the
working directory, i.e. the one baked into the image), so a run is reproducible from its
pipeline arguments alone. Each step records a DoveError it raises (``failures.py``), so the
orchestrator re-raises it with its own class.

No step applies a gate: ``register_step`` always registers the version (alias
``challenger``) and the register stage decides whether it becomes champion; its return
value (a :class:`~dove_model.registry.gates.GateVerdict`) only says whether to deploy.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from dove_model.atomic import write_text
from dove_model.config import Params, load_params, parse_params
from dove_model.errors import GateFailed
from dove_model.pipeline.failures import recorded_failure

DATA_VERSION_FILE = "data_version.txt"  # in the Dataset artifact: the run's data version


def load_step_params(params_yaml: str, **data_overrides: Any) -> Params:
    """Params from the pipeline argument (or params.yaml), with data paths overridden."""
    if params_yaml.strip():
        raw = yaml.safe_load(params_yaml) or {}
        params = parse_params(raw, source="pipeline argument params_yaml")
    else:
        params = load_params()
    if not data_overrides:
        return params
    raw = params.model_dump(mode="json", by_alias=True)
    raw["data"] |= data_overrides
    return parse_params(raw, source="pipeline argument params_yaml")


def dataset_dir(params: Params, dataset_path: str | Path) -> Path:
    """The prepared dataset inside a KFP Dataset artifact folder."""
    return Path(dataset_path) / params.data.name


def prepare_step(params_yaml: str, data_version: str, dataset_path: str) -> Path:
    """Prepare the dataset into the artifact folder; records the requested data version."""
    from dove_model.data.prepare import prepare

    with recorded_failure(dataset_path):
        params = load_step_params(params_yaml, prepared_dir=str(dataset_path))
        folder = prepare(params, progress=False)
        write_text(Path(dataset_path) / DATA_VERSION_FILE, data_version + "\n")
    return folder


def _summary_html(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in summary.items()
    )
    return f"<html><body><h1>Data validation</h1><table>{rows}</table></body></html>"


def _report_page(report_dir: Path) -> str:
    """The Data Docs index page where there is one, else a table of the summary."""
    from dove_model.quality.validate import SUMMARY_FILE

    index = next(iter(sorted(report_dir.glob("data_docs/**/index.html"))), None)
    if index is not None:
        return index.read_text(encoding="utf-8")
    summary_file = report_dir / SUMMARY_FILE
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return _summary_html(summary)


def validate_step(params_yaml: str, dataset_path: str, report_path: str, report_dir: str) -> bool:
    """Run the Great Expectations suites; a critical failure raises GateFailed (recorded, so
    the run fails with that class) and stops the pipeline.

    ``report_path`` (the KFP HTML artifact) gets the report page; ``report_dir`` keeps the
    whole report for the register step.
    """
    from dove_model.quality.validate import SUMMARY_FILE, validate

    with recorded_failure(report_path):
        params = load_step_params(params_yaml)
        result = validate(dataset_dir(params, dataset_path), params, Path(report_dir))
        write_text(report_path, _report_page(Path(report_dir)))
        if not result.passed:
            raise GateFailed(
                f"{Path(report_dir) / SUMMARY_FILE}: a critical data expectation failed; "
                "pipeline stopped"
            )
    return True


def train_step(params_yaml: str, dataset_path: str, model_path: str) -> Path:
    """Train into the Model artifact folder (the model directory, history, checkpoints).

    A retry of the task finds the checkpoints in the same folder and resumes."""
    from dove_model.families.dispatch import train
    from dove_model.training.run import trained_model_dir

    with recorded_failure(model_path):
        params = load_step_params(params_yaml)
        train(dataset_dir(params, dataset_path), params, Path(model_path))
    return trained_model_dir(model_path)


def evaluate_step(
    params_yaml: str, dataset_path: str, model_path: str, metrics_path: str, kfp_metrics: Any
) -> None:
    """Evaluate on the test split and log the recalls to the KFP Metrics artifact. The gates
    are the register step's business (docs/pipeline.md, "Aliases and gates")."""
    from dove_model.evaluation.evaluate import evaluate
    from dove_model.training.run import trained_model_dir

    with recorded_failure(metrics_path):
        params = load_step_params(params_yaml)
        metrics = evaluate(
            trained_model_dir(model_path),
            dataset_dir(params, dataset_path),
            params,
            Path(metrics_path),
        )
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            kfp_metrics.log_metric(key, float(value))


def _requested_version(dataset_path: str) -> str | None:
    marker = Path(dataset_path) / DATA_VERSION_FILE
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None


def register_step(
    params_yaml: str,
    dataset_path: str,
    model_path: str,
    metrics_path: str,
    validation_dir: str,
    registration_path: str,
) -> str:
    """Register the model (alias challenger) whatever its recalls; the register stage makes
    it champion if the gates pass. Returns the verdict: ``passed`` when it became champion."""
    from dove_model.registry import detect_data_version, register
    from dove_model.registry.gates import GateVerdict
    from dove_model.training.run import HISTORY_FILE, trained_model_dir

    with recorded_failure(registration_path):
        params = load_step_params(params_yaml)
        data = dataset_dir(params, dataset_path)
        result = register(
            trained_model_dir(model_path),
            Path(metrics_path),
            params,
            detect_data_version(data),
            dataset_dir=data,
            history_file=Path(model_path) / HISTORY_FILE,
            validation_dir=Path(validation_dir) if validation_dir else None,
            out_file=Path(registration_path),
            run_key=_requested_version(dataset_path),
        )
    print(result.to_json())
    return GateVerdict.of(result.promoted).value


def deploy_step(params_yaml: str, dataset_path: str, index_path: str) -> str:
    """Import the champion into the BentoML store and index the dataset's images with it."""
    from dove_model.serving.deploy import deploy

    with recorded_failure(index_path):
        params = load_step_params(params_yaml)
        staging = Path(index_path)
        shutil.rmtree(staging, ignore_errors=True)
        deployment = deploy(
            params, dataset_dir(params, dataset_path), index_dir=staging, progress=False
        )
    return deployment.model.tag


def download_champion_labelled(
    params: Params, dst: Path, root: Path | None = None
) -> tuple[Path, dict[str, str]]:
    """Download the champion under ``dst``: its model directory and the labels deploy's
    BentoML import gives it (version, alias, data version, fingerprint)."""
    from dove_model.model.directory import model_fingerprint
    from dove_model.registry.promotion import download_version, resolve_champion

    champion = resolve_champion(params, root=root)
    version = str(champion.version)
    model_dir = download_version(params, version, dst, root=root)
    return model_dir, {
        "model_version": version,
        "alias": "champion",
        "data_version": champion.tags.get("data_version") or "unknown",
        "fingerprint": model_fingerprint(model_dir)[:16],
    }


def index_shard_step(
    params_yaml: str, dataset_path: str, shard_index: int, shard_count: int, shard_path: str
) -> Path:
    """Encode shard ``shard_index``/``shard_count`` of the dataset with the champion into the
    shard folder ``shard_path`` (``dove index build --shard I/N``)."""
    import tempfile

    from dove_model.index.shards import ShardSpec, build_shard

    with recorded_failure(shard_path):
        params = load_step_params(params_yaml)
        spec = ShardSpec.parse(f"{shard_index}/{shard_count}")
        shutil.rmtree(shard_path, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="dove-champion-") as tmp:
            model_dir, labels = download_champion_labelled(params, Path(tmp))
            build_shard(
                model_dir,
                dataset_dir(params, dataset_path),
                params,
                shard_path,
                spec,
                model_info=labels,
                progress=False,
            )
    return Path(shard_path)


def _shard_fingerprints(shard_paths: list[str]) -> set[str]:
    from dove_model.index.shards import SHARD_META

    return {
        str(json.loads((Path(p) / SHARD_META).read_text(encoding="utf-8"))["model_fingerprint"])
        for p in shard_paths
        if (Path(p) / SHARD_META).is_file()
    }


def merge_index_step(params_yaml: str, shard_paths: list[str], index_path: str) -> str:
    """The fan-in of a sharded deploy: import the champion into the BentoML store (as
    ``deploy_step``), refuse shards another model encoded (a promotion during the fan-out),
    and merge the shard folders into the index folder ``index_path``."""
    from dove_model.errors import ConfigError
    from dove_model.index.shards import merge_shards
    from dove_model.serving.model_store import import_champion

    with recorded_failure(index_path):
        params = load_step_params(params_yaml)
        imported = import_champion(params)
        mine = imported.labels["fingerprint"]
        others = sorted(f[:16] for f in _shard_fingerprints(shard_paths) if f[:16] != mine)
        if others:
            raise ConfigError(
                f"shards encoded by model {', '.join(others)}, the champion is {mine}: the "
                "champion changed during the fan-out; run the deploy step again"
            )
        shutil.rmtree(index_path, ignore_errors=True)
        merge_shards(sorted(shard_paths), params.index, index_path)
    return imported.tag
