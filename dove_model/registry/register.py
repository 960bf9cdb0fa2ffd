"""The register stage: track the run, log the pyfunc, register it, gate it, set aliases.

On a sqlite store everything runs under the local file lock (one host). The aliases are
decided and written under the registry lease every host shares: the gate compares against
the champion read before the lease (re-evaluating it can take minutes), and if another host
changed the champion meanwhile the gate runs again against the new one.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dove_model.atomic import write_text
from dove_model.config import Params
from dove_model.errors import DoveError
from dove_model.registry import aliases
from dove_model.registry.feedback_check import FeedbackCheck, with_feedback
from dove_model.registry.gates import GateDecision, check_gates
from dove_model.registry.lease import registry_lease
from dove_model.registry.lock import registry_lock
from dove_model.registry.tracking import DataVersion, configure

log = logging.getLogger(__name__)

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
MODEL_ARTIFACT_NAME = "model"
METRICS_TAG_PREFIX = "metrics:"  # a champion re-evaluated on another data version (no "@":
# MLflow refuses it in a tag name)
RUN_KEY_TAG = "pipeline_data_version"
FAMILY_TAG = "family"  # dove | dual: each version says which model family it is
GATE_TAG = "gate"  # a model version's gates.GateVerdict
GATE_SUMMARY_TAG = "gate_summary"  # its GateDecision.summary()
GATE_ATTEMPTS = 5  # the champion may change this often under a registration before it fails


@dataclass(frozen=True)
class RegistrationResult:
    """What the register stage did; written as JSON for DVC, KFP and Airflow."""

    model_name: str
    version: str
    run_id: str
    model_uri: str
    data_version: str
    promoted: bool
    gate: str
    champion_version: str | None
    alias_changes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def read_metrics(metrics_file: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(Path(metrics_file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DoveError(f"{metrics_file}: metrics file not found (run `dove evaluate`)") from None
    except json.JSONDecodeError as exc:
        raise DoveError(f"{metrics_file}:{exc.lineno}: not valid JSON") from None
    if not isinstance(metrics, dict):
        raise DoveError(f"{metrics_file}: expected a JSON object of metrics")
    return metrics


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become their JSON text."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    value = json.dumps(data) if isinstance(data, list) else data
    return {prefix.rstrip("."): value}


def numeric(data: dict[str, Any]) -> dict[str, float]:
    return {
        k.replace("@", "_at_"): float(v)
        for k, v in flatten(data).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _log_history(history_file: Path | None) -> list[dict[str, float]]:
    import mlflow

    from dove_model.registry.plots import epoch_rows

    if history_file is None or not history_file.is_file():
        return []
    rows = epoch_rows(json.loads(history_file.read_text(encoding="utf-8")))
    for index, row in enumerate(rows):
        step = int(row.get("epoch", index + 1))
        metrics = {f"train.{k}": v for k, v in row.items() if k not in ("epoch", "step")}
        if metrics:
            mlflow.log_metrics(metrics, step=step)
    mlflow.log_artifact(str(history_file), artifact_path="training")
    return rows


def _log_run_contents(
    params: Params,
    metrics: dict[str, Any],
    metrics_file: Path,
    data_version: DataVersion,
    history_file: Path | None,
    validation_dir: Path | None,
    plots_dir: Path,
) -> None:
    """Params, per-epoch metrics, data version, validation report, plots, metrics JSON."""
    import mlflow

    from dove_model.registry.plots import recall_bars, training_curves

    run_params = {
        "model": params.model_for_training().model_dump(mode="json"),
        "train": {"profile": params.train.profile, "seed": params.train.seed}
        | params.train.active.model_dump(mode="json", exclude={"model"}),
        "data": params.data.model_dump(mode="json", exclude={"synth"})
        | ({"synth": params.data.synth.model_dump()} if params.data.source == "synth" else {}),
        "evaluate": params.evaluate.model_dump(mode="json"),
        "gates": params.register_.gates.model_dump(mode="json"),
    }
    mlflow.log_params(flatten(run_params))
    mlflow.set_tags(data_version.as_tags())
    mlflow.log_dict(params.model_dump(mode="json", by_alias=True), "params.json")
    rows = _log_history(history_file)
    mlflow.log_metrics(numeric(metrics))
    mlflow.log_artifact(str(metrics_file), artifact_path="evaluation")
    if validation_dir is not None and validation_dir.is_dir():
        mlflow.log_artifacts(str(validation_dir), artifact_path="validation")
    plots_dir.mkdir(parents=True, exist_ok=True)
    figures = [recall_bars(metrics, plots_dir / "recall_bars.png")]
    if rows:
        figures.append(training_curves(rows, plots_dir / "training_curves.png"))
    for figure in figures:
        mlflow.log_artifact(str(figure), artifact_path="plots")


def _log_pyfunc(model_dir: Path) -> Any:
    import mlflow
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    from dove_model.families.dispatch import pip_packages
    from dove_model.model.directory import model_family
    from dove_model.registry.pyfunc_model import MODEL_DIR_ARTIFACT

    family = model_family(model_dir)
    signature = ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", "text", required=False),
                ColSpec("string", "image", required=False),
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("task", "string", "encode_text"),
                ParamSpec("top_k", "long", 5),
                # the version's family; a caller may pass the family it expects (refused
                # when different)
                ParamSpec("family", "string", family),
            ]
        ),
    )
    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT_NAME,
        python_model=str(PYFUNC_FILE),
        artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
        signature=signature,
        input_example=pd.DataFrame({"text": ["many planes are parked at the airport"]}),
        pip_requirements=_pip_requirements(pip_packages(model_dir)),
        metadata={FAMILY_TAG: family},
    )


PYFUNC_PACKAGES = ("dove-ops", "mlflow", "torch", "torchvision", "timm", "safetensors", "numpy")


def _pip_requirements(family_packages: tuple[str, ...] = ()) -> list[str]:
    """The common packages and the family's own (its spec's ``pip_packages``), pinned to
    the installed versions."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in PYFUNC_PACKAGES + family_packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def champion_metrics(
    client: Any,
    name: str,
    champion: Any,
    data_version: DataVersion,
    params: Params,
    dataset_dir: Path | None,
) -> dict[str, Any] | None:
    """The champion's metrics on ``data_version``: its own run if it was trained on the same
    data, a cached re-evaluation tag, or a fresh evaluation of its weights on ``dataset_dir``."""
    if champion.tags.get("data_version") == data_version.tag:
        return dict(client.get_run(champion.run_id).data.metrics)
    cached = champion.tags.get(METRICS_TAG_PREFIX + data_version.tag)
    if cached:
        return json.loads(cached)
    if dataset_dir is None:
        return None
    from dove_model.evaluation.evaluate import evaluate

    with tempfile.TemporaryDirectory(prefix="dove-champion-") as tmp:
        model_dir = download_model_dir(f"models:/{name}/{champion.version}", Path(tmp) / "m")
        result = evaluate(model_dir, dataset_dir, params, Path(tmp) / "metrics.json")
    gated = {k: v for k, v in result.items() if isinstance(v, int | float)}
    client.set_model_version_tag(
        name, str(champion.version), METRICS_TAG_PREFIX + data_version.tag, json.dumps(gated)
    )
    return gated


def download_model_dir(model_uri: str, dst: Path) -> Path:
    """Download a logged DOVE pyfunc and return its model directory (contracts section 3)."""
    import mlflow
    import yaml

    from dove_model.families.dispatch import check_model_dir

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
    artifacts = mlmodel["flavors"]["python_function"].get("artifacts", {})
    relative = artifacts.get("model_dir", {}).get("path", "artifacts/model_dir")
    model_dir = local / relative
    check_model_dir(model_dir)
    return model_dir


def _log_run(
    params: Params,
    model_dir: Path,
    metrics: dict[str, Any],
    metrics_file: Path,
    data_version: DataVersion,
    history_file: Path,
    validation_dir: Path | None,
    plots_dir: Path | None,
) -> tuple[str, str]:
    """One MLflow run with the run contents and the pyfunc; returns (run id, model URI)."""
    import mlflow

    mlflow.set_experiment(params.register_.experiment)
    with (
        mlflow.start_run(run_name=f"dove-{data_version.tag[:8]}") as run,
        tempfile.TemporaryDirectory(prefix="dove-plots-") as scratch,
    ):
        _log_run_contents(
            params,
            metrics,
            metrics_file,
            data_version,
            history_file,
            validation_dir,
            Path(plots_dir or scratch),
        )
        info = _log_pyfunc(model_dir)
    return run.info.run_id, info.model_uri


def _gate_and_alias(
    client: Any,
    name: str,
    version: str,
    metrics: dict[str, Any],
    data_version: DataVersion,
    params: Params,
    dataset_dir: Path | None,
    feedback: FeedbackCheck,
) -> tuple[GateDecision, list[aliases.AliasChange], Any]:
    """Gate ``version`` against the champion (recalls, then the users' own pairs) and set
    its aliases under the registry lease; returns the decision, the alias changes and the
    champion afterwards."""
    with registry_lease(client, name) as lease:
        changes = aliases.set_challenger(client, name, version)
        aliases.verify_aliases(client, name, changes)
        lease.verify()
    for _ in range(GATE_ATTEMPTS):
        champion = aliases.version_by_alias(client, name, aliases.CHAMPION)
        baseline = (
            champion_metrics(client, name, champion, data_version, params, dataset_dir)
            if champion is not None
            else None
        )
        decision = check_gates(metrics, params.register_.gates, baseline)
        if decision.passed and champion is not None:
            decision = with_feedback(decision, _feedback_verdict(feedback, name, champion))
        with registry_lease(client, name) as lease:
            current = aliases.version_by_alias(client, name, aliases.CHAMPION)
            if _number(current) != _number(champion):
                log.info("champion moved to v%s while gating v%s: again", _number(current), version)
                continue
            client.set_model_version_tag(name, version, GATE_TAG, decision.verdict)
            client.set_model_version_tag(name, version, GATE_SUMMARY_TAG, decision.summary()[:4000])
            promoted = aliases.make_champion(client, name, version) if decision.passed else []
            aliases.verify_aliases(client, name, promoted)
            lease.verify()
            now = aliases.version_by_alias(client, name, aliases.CHAMPION)
            return decision, changes + promoted, now
    raise DoveError(
        f"registered model {name!r}: the champion changed {GATE_ATTEMPTS} times while v{version} "
        f"was being gated; v{version} is registered, gate it with `dove promote {version}`"
    )


def _feedback_verdict(feedback: FeedbackCheck, name: str, champion: Any) -> Any:
    uri = f"models:/{name}/{champion.version}"
    return feedback.verdict(lambda dst: download_model_dir(uri, dst))


def _number(version: Any) -> str | None:
    return None if version is None else str(version.version)


def register(
    model_dir: Path,
    metrics_file: Path,
    params: Params,
    data_version: DataVersion,
    *,
    dataset_dir: Path | None = None,
    history_file: Path | None = None,
    validation_dir: Path | None = None,
    out_file: Path | None = None,
    run_key: str | None = None,
    plots_dir: Path | None = None,
    root: Path | None = None,
) -> RegistrationResult:
    """Log, register (alias ``challenger``) and, if the gates pass, promote to ``champion``.
    ``dataset_dir`` lets the gate re-evaluate the champion when it was trained on another
    data version (without it: the floors only), and score both on the users' pairs (the
    feedback gate, with the export under ``root``). ``run_key`` (the pipeline's data version
    argument) is tagged so orchestrators can find this version. ``plots_dir`` keeps the PNG
    plots (for ``dvc plots``); by default they only go to MLflow."""
    import mlflow
    from mlflow import MlflowClient

    from dove_model.families.dispatch import check_model_dir
    from dove_model.model.directory import model_family
    from dove_model.training.run import HISTORY_FILE

    model_dir, metrics_file = Path(model_dir), Path(metrics_file)
    check_model_dir(model_dir)
    metrics = read_metrics(metrics_file)
    name = params.register_.model_name
    uri = configure(params.register_, root)
    with registry_lock(uri):
        run_id, model_uri = _log_run(
            params,
            model_dir,
            metrics,
            metrics_file,
            data_version,
            history_file or model_dir.parent / HISTORY_FILE,
            validation_dir,
            plots_dir,
        )
        tags = data_version.as_tags() | {FAMILY_TAG: model_family(model_dir)}
        tags |= {RUN_KEY_TAG: run_key} if run_key else {}
        version = str(mlflow.register_model(model_uri, name, tags=tags).version)
        check = FeedbackCheck.of(params, model_dir, dataset_dir, root)  # the users' pairs
        decision, changes, now_champion = _gate_and_alias(
            MlflowClient(uri, uri), name, version, metrics, data_version, params, dataset_dir, check
        )
    result = RegistrationResult(
        model_name=name,
        version=str(version),
        run_id=run_id,
        model_uri=f"models:/{name}/{version}",
        data_version=data_version.tag,
        promoted=decision.passed,
        gate=decision.summary(),
        champion_version=str(now_champion.version) if now_champion else None,
        alias_changes=[str(c) for c in changes],
    )
    if out_file is not None:
        write_text(out_file, result.to_json() + "\n")
    log.info("registered %s v%s: %s", name, version, decision.summary())
    return result
