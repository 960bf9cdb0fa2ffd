"""What each KFP component runs inside its container: the stage functions plus the
plumbing between KFP artifact paths and the canonical layout.

Every step takes ``params_yaml``, the text of params.yaml (empty: the params.yaml in the
working directory, i.e. the one baked into the image), so a run is reproducible from its
pipeline arguments alone.
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

GATE_PASSED = "passed"
GATE_FAILED = "failed"


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

    params = load_step_params(params_yaml, prepared_dir=str(dataset_path))
    folder = prepare(params, progress=False)
    write_text(Path(dataset_path) / "data_version.txt", data_version + "\n")
    return folder


def _summary_html(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in summary.items()
    )
    return f"<html><body><h1>Data validation</h1><table>{rows}</table></body></html>"


def validate_step(params_yaml: str, dataset_path: str, report_path: str, report_dir: str) -> bool:
    """Run the Great Expectations suites; a critical failure raises and stops the pipeline.

    ``report_path`` (the KFP HTML artifact) gets the Data Docs index page where there is one,
    else a table of the summary; ``report_dir`` keeps the whole report for the register step.
    """
    from dove_model.quality.validate import validate

    params = load_step_params(params_yaml)
    result = validate(dataset_dir(params, dataset_path), params, Path(report_dir))
    index = next(iter(sorted(Path(report_dir).glob("data_docs/**/index.html"))), None)
    summary_file = Path(report_dir) / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    page = index.read_text(encoding="utf-8") if index else _summary_html(summary)
    write_text(report_path, page)
    if not result.passed:
        raise GateFailed(f"{summary_file}: a critical data expectation failed; pipeline stopped")
    return True


def train_step(params_yaml: str, dataset_path: str, model_path: str) -> Path:
    """Train into the Model artifact folder (``model/``, ``history.json``, checkpoints).

    A retry of the task finds the checkpoints in the same folder and resumes."""
    from dove_model.training.train import train

    params = load_step_params(params_yaml)
    train(dataset_dir(params, dataset_path), params, Path(model_path))
    return Path(model_path) / "model"


def evaluate_step(
    params_yaml: str, dataset_path: str, model_path: str, metrics_path: str, kfp_metrics: Any
) -> str:
    """Evaluate on the test split; log the recalls to the KFP Metrics artifact and return
    whether the absolute floors (``register.gates.min_metrics``) pass."""
    from dove_model.evaluation.evaluate import evaluate
    from dove_model.registry.gates import check_gates

    params = load_step_params(params_yaml)
    metrics = evaluate(
        Path(model_path) / "model", dataset_dir(params, dataset_path), params, Path(metrics_path)
    )
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            kfp_metrics.log_metric(key, float(value))
    decision = check_gates(metrics, params.register_.gates)
    print(decision.summary())
    return GATE_PASSED if decision.passed else GATE_FAILED


def _requested_version(dataset_path: str) -> str | None:
    marker = Path(dataset_path) / "data_version.txt"
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None


def register_step(
    params_yaml: str,
    dataset_path: str,
    model_path: str,
    metrics_path: str,
    validation_dir: str,
    registration_path: str,
) -> str:
    """Register as challenger; promote to champion if the gates pass against the champion."""
    from dove_model.registry import detect_data_version, register

    params = load_step_params(params_yaml)
    data = dataset_dir(params, dataset_path)
    result = register(
        Path(model_path) / "model",
        Path(metrics_path),
        params,
        detect_data_version(data),
        dataset_dir=data,
        history_file=Path(model_path) / "history.json",
        validation_dir=Path(validation_dir) if validation_dir else None,
        out_file=Path(registration_path),
        run_key=_requested_version(dataset_path),
    )
    print(result.to_json())
    return GATE_PASSED if result.promoted else GATE_FAILED


def deploy_step(params_yaml: str, dataset_path: str, index_path: str) -> str:
    """Import the champion into the BentoML store and index the dataset's images with it."""
    from dove_model.serving.deploy import deploy

    params = load_step_params(params_yaml)
    staging = Path(index_path)
    shutil.rmtree(staging, ignore_errors=True)
    source = dataset_dir(params, dataset_path)
    deployment = deploy(params, source, index_dir=staging, progress=False)
    return deployment.model.tag
