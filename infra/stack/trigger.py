"""``dove stack trigger``: a retraining through Airflow's REST API, as a manual run on the
stack's project or as a data-changed event on the DAG's asset."""

from __future__ import annotations

from typing import Any

from infra.stack import airflow
from infra.stack.airflow_api import AirflowClient
from infra.stack.config import DAG_ID, Layout, StackError
from infra.stack.credentials import read_account
from infra.stack.state import load_state


def client_for(layout: Layout) -> AirflowClient:
    """A REST client of the stack's Airflow, logged in with the stack's account."""
    state = load_state(layout.state_file)
    port = state.ports.get("airflow")
    if not port or not airflow.is_healthy(port):
        raise StackError(f"Airflow of {layout.root} is not running: `dove stack up` first")
    account = read_account(layout.credential("airflow"))
    return AirflowClient(airflow.url(port), account.username, account.password)


def trigger(
    layout: Layout, *, asset_event: bool = False, wait: bool = False, timeout: float = 3600
) -> dict[str, Any]:
    """Start a run (or send the event); with ``wait``, the finished run's id and state."""
    client = client_for(layout)
    state = load_state(layout.state_file)
    if asset_event:
        known = client.run_ids(DAG_ID)
        stamp = client.asset_event(extra={"source": "dove stack trigger"})
        if not wait:
            return {"asset_event": stamp}
        run_id = client.wait_for_new_run(DAG_ID, known, timeout=min(timeout, 300))
    else:
        conf = {"project_root": state.project, "params_file": state.params_file}
        run_id = client.trigger(DAG_ID, conf)
        if not wait:
            return {"dag_run_id": run_id}
    run = client.wait_for_run(DAG_ID, run_id, timeout)
    return {
        "dag_run_id": run_id,
        "state": run["state"],
        "tasks": client.task_states(DAG_ID, run_id),
    }
