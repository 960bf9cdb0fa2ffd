"""Airflow 3 DAG: retrain DOVE weekly and whenever the data version changes.

detect data version -> run the KFP pipeline (the endpoint in ``kfp_host`` when set, else KFP's
local runner on ``components.pipeline``) -> read the register stage's verdict from the registry
-> promote (only when it passed) -> roll the service. The DAG applies no gate itself: a version
that failed its gates is registered as challenger by the pipeline and is not promoted; the
roll-out still runs, and with the champion unchanged it updates the service's index
incrementally (only the new data's images are encoded); a new champion gets a full rebuild,
which the running service swaps in live (model and index together). A run on an unchanged
data version registers nothing and writes no index version. Beside them, ``ingest_archive``
cuts params.yaml's ``archive.source`` (scenes, a STAC catalog) into chips and runs the geo
gate, when a source is set (issue 28).
Parsing this file imports only the Airflow SDK: the work lives in
``dove_model.pipeline.retraining`` and is imported inside the tasks. Every task is idempotent
(the registry records what was done for a data version), so retries are safe.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

PROJECT_ROOT = str(Path(__file__).resolve().parents[1])

# Producers (e.g. `dvc repro prepare` wrapped in a DAG, or POST /api/v2/assets/events)
# emit an event on this asset when the dataset changes.
DATA_ASSET = Asset(name="dove-data-version", uri="file:///dove-ops/data.dvc")

# Retries: 2, the first 1 to 2 minutes after the failure, the second 2 to 4 minutes (Airflow
# adds a per-try jitter). Airflow 3 reads retry_exponential_backoff as the multiplier: True
# would be 1, a constant delay.
DEFAULT_ARGS = {
    "owner": "dove-ops",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}


def _settings() -> tuple[str, str, str | None]:
    params = get_current_context()["params"]
    return params["project_root"], params["params_file"], params["kfp_host"] or None


@task(execution_timeout=timedelta(hours=6))
def ingest_archive() -> dict:
    """Issue 28: params.yaml's ``archive.source`` (scenes, a STAC catalog) cut into chips in
    ``archive.out_dir`` and the geo gate run on them (a failed gate fails the task); nothing
    to do, and success, while no source is configured."""
    from dove_model.pipeline.archive import ingest_archive

    root, params_file, _ = _settings()
    ingested = ingest_archive(root, params_file)
    print(f"archive: {ingested}")
    return ingested


@dag(
    dag_id="dove_retraining",
    description="Retrain, gate, register and roll out DOVE image-text retrieval.",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=[DATA_ASSET]
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["dove", "mlops"],
    params={
        "project_root": Param(PROJECT_ROOT, type="string"),
        "params_file": Param("params.yaml", type="string"),
        "kfp_host": Param("", type="string", description="KFP endpoint; empty runs locally"),
    },
)
def dove_retraining() -> None:
    @task
    def detect_data_version() -> str:
        from dove_model.pipeline.retraining import detect_data_version

        root, params_file, _ = _settings()
        return detect_data_version(root, params_file)

    @task(execution_timeout=timedelta(hours=12))
    def run_pipeline(data_version: str) -> dict:
        from components.pipeline import build_pipeline
        from dove_model.pipeline.retraining import run_pipeline

        root, params_file, kfp_host = _settings()
        return run_pipeline(root, params_file, data_version, kfp_host, build=build_pipeline)

    @task.branch
    def gate_passed(result: dict) -> list[str]:
        """Promote when the register stage's gates passed; else keep the champion and go
        straight to the roll-out (an incremental index update with the new data), or, with no
        champion at all yet, skip both (nothing to serve)."""
        from dove_model.pipeline.retraining import has_champion
        from dove_model.registry.gates import GateVerdict

        print(f"data version {result['data_version']}: v{result['model_version']} {result['gate']}")
        if result["gate"] == GateVerdict.PASSED:
            return ["promote"]
        root, params_file, _ = _settings()
        return ["roll_service"] if has_champion(root, params_file) else []

    @task
    def promote(result: dict) -> list[str]:
        from dove_model.pipeline.retraining import promote_if_gated

        root, params_file, _ = _settings()
        return promote_if_gated(root, params_file, str(result["model_version"]))

    @task(trigger_rule="none_failed_min_one_success")
    def roll_service() -> dict:
        """Nothing (the index is already the champion's on this data), an incremental index
        update (champion unchanged) or a full rebuild (new champion); the XCom's ``path``
        says which ran."""
        from dove_model.pipeline.retraining import roll_service

        root, params_file, _ = _settings()
        rolled = roll_service(root, params_file)
        if rolled["path"] == "unchanged":
            print(f"unchanged: index {rolled['index_version']} of v{rolled['model_version']}")
        elif rolled["path"] == "incremental":
            print(f"incremental: +{rolled['added']} -{rolled['removed']} images")
        else:
            print(f"full rebuild: new champion v{rolled['model_version']}")
        return rolled

    ingest_archive()  # beside the retraining, on its own (issue 28)
    result = run_pipeline(detect_data_version())
    branch = gate_passed(result)
    rolled = roll_service()
    branch >> promote(result) >> rolled
    branch >> rolled


dove_retraining()
