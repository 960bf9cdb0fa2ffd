"""Airflow 3 DAG: retraining on signal (issue 29). Hourly: report the champion's query drift
and online proxies (the daily HTML report), then, when enough new relevant feedback waits
(``feedback.retrain_min_new_pairs``) or the queries drifted and new feedback waits, export the
feedback into a new DVC data version through the Great Expectations gates and post an event
on the data asset, which schedules ``dove_retraining`` (its existing data-triggered path).
No signal: ``post_data_event`` is skipped and no event is posted.

Parsing this file imports only the Airflow SDK; the work lives in
``dove_model.pipeline.feedback_signal``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, get_current_context, task

PROJECT_ROOT = str(Path(__file__).resolve().parents[1])
# the same asset dove_retraining is scheduled on (dags/dove_retraining.py)
DATA_ASSET = Asset(name="dove-data-version", uri="file:///dove-ops/data.dvc")


def _settings() -> tuple[str, str]:
    params = get_current_context()["params"]
    return params["project_root"], params["params_file"]


@dag(
    dag_id="dove_feedback_signal",
    description="Watch query drift and feedback; post a new data version when they call for it.",
    schedule=CronTriggerTimetable("17 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "dove-ops", "retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["dove", "mlops", "feedback"],
    params={
        "project_root": Param(PROJECT_ROOT, type="string"),
        "params_file": Param("params.yaml", type="string"),
    },
)
def dove_feedback_signal() -> None:
    @task(execution_timeout=timedelta(hours=1))
    def monitor_drift() -> dict:
        from dove_model.pipeline.feedback_signal import monitor_champion

        root, params_file = _settings()
        return monitor_champion(root, params_file)

    @task.short_circuit(execution_timeout=timedelta(hours=1))
    def export_on_signal() -> dict | bool:
        """The export's decision; a falsy return (no signal) skips the event."""
        from dove_model.pipeline.feedback_signal import export_on_signal

        root, params_file = _settings()
        decision = export_on_signal(root, params_file)
        print(decision)
        return decision if decision["fired"] else False

    @task(outlets=[DATA_ASSET])
    def post_data_event() -> str:
        """Succeeding posts the asset event: the scheduler then runs dove_retraining."""
        decision = get_current_context()["ti"].xcom_pull(task_ids="export_on_signal")
        return str(decision.get("data_version"))

    monitor_drift() >> export_on_signal() >> post_data_event()


dove_feedback_signal()
