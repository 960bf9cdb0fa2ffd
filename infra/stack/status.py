"""``dove stack status``: each service's URL, whether it really answers, where its
credentials are. Healthy means the stack's own process runs and its probe passes:
PostgreSQL's superuser login, MLflow's ``/health``, the API server's ``/api/v2/monitor/health``
(database, scheduler, DAG processor) and the service's ``/readyz``."""

from __future__ import annotations

from typing import Any

from infra.stack import airflow, mlflow, postgres, processes, service
from infra.stack.config import DATABASES, LOOPBACK, Layout, StackError
from infra.stack.credentials import read_account
from infra.stack.state import State, load_state


def _pid(state: State, name: str) -> int | None:
    record = state.processes.get(name)
    return record.pid if processes.is_alive(record) else None


def _credentials(layout: Layout, name: str) -> str:
    return str(layout.credential(name))


def _postgres(layout: Layout, state: State) -> dict[str, Any]:
    """Healthy: the server runs (the host's postmaster, or the stack's container) and the
    superuser logs in."""
    port = state.ports.get("postgres")
    pid = postgres.postmaster_pid(layout) or _pid(state, "postgres")
    healthy = False
    if port and pid:
        try:
            superuser = read_account(layout.credential("postgres"))
        except StackError:
            superuser = None
        healthy = superuser is not None and postgres.accepts_logins(port, superuser)
    return {
        "url": f"postgresql://{LOOPBACK}:{port}" if port else None,
        "healthy": healthy,
        "credentials": _credentials(layout, "postgres"),
        "pid": pid,
        "databases": {db: _credentials(layout, f"db-{db}") for db in DATABASES},
    }


def _mlflow(layout: Layout, state: State) -> dict[str, Any]:
    port, pg_port = state.ports.get("mlflow"), state.ports.get("postgres")
    pid = _pid(state, "mlflow")
    return {
        "url": mlflow.url(port) if port else None,
        "healthy": bool(port and pid and mlflow.is_healthy(port)),
        "credentials": _credentials(layout, "mlflow"),
        "backend": mlflow.backend_uri(pg_port) if pg_port else None,
        "artifacts": str(layout.artifacts),
        "accounts": {k: _credentials(layout, f"mlflow-{k}") for k in ("pipeline", "reader")},
        "pid": pid,
    }


def _airflow(layout: Layout, state: State) -> dict[str, Any]:
    port = state.ports.get("airflow")
    pids = {c: _pid(state, f"airflow-{c}") for c in airflow.COMPONENTS}
    health = airflow.health(port) if port and all(pids.values()) else {}
    healthy = all(
        health.get(k) == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")
    )
    return {
        "url": airflow.url(port) if port else None,
        "healthy": bool(health) and healthy,
        "credentials": _credentials(layout, "airflow"),
        "components": health,
        "pids": pids,
        "home": str(layout.airflow_home),
    }


SERVED_KEYS = ("model_version", "model_fingerprint", "index_version", "n_images")


def _service(state: State) -> dict[str, Any]:
    """The service's health and, asked live (``/info``: roll-outs swap the model and index
    without a restart), what it serves."""
    port = state.ports.get("service")
    pid = _pid(state, "service")
    healthy = bool(port and pid and service.is_ready(port))
    info = service.served(port) if healthy and port else None
    serving = {k: info.get(k) for k in SERVED_KEYS} if info else None
    if serving:
        note = (
            f"serving v{serving['model_version']} (index {serving['index_version']}, "
            f"{serving['n_images']} images)"
        )
    elif pid:
        note = state.service_note
    elif state.service_note.startswith("not deployed"):
        note = "not deployed: no @champion yet (`dove stack trigger`, then `dove stack up`)"
    else:
        note = "not running (`dove stack up` starts it when the registry has a @champion)"
    return {
        "url": service.url(port) if port else None,
        "healthy": healthy,
        "deployed": pid is not None,
        "note": note,
        "pid": pid,
        "serving": serving,
    }


def collect(layout: Layout) -> dict[str, Any]:
    """One object with the keys postgres, mlflow, airflow, service, the runtime they were
    started with (processes | containers) and the container
    of each contained service (and where state is)."""
    state = load_state(layout.state_file)
    return {
        "postgres": _postgres(layout, state),
        "mlflow": _mlflow(layout, state),
        "airflow": _airflow(layout, state),
        "service": _service(state),
        "runtime": state.runtime or None,
        "containers": dict(state.containers),
        "state_dir": str(layout.root),
        "logs": str(layout.logs),
        "project": state.project or None,
    }


def table(found: dict[str, Any]) -> Any:
    """The same as a rich table (credentials: the file's name in <state>/credentials)."""
    from rich.table import Table

    view = Table(title=f"dove stack: {found['state_dir']}")
    view.add_column("service")
    view.add_column("url", no_wrap=True)
    view.add_column("healthy")
    view.add_column("credentials file / note", overflow="fold")
    for name in ("postgres", "mlflow", "airflow", "service"):
        part = found[name]
        mark = "[green]yes[/]" if part["healthy"] else "[red]no[/]"
        detail = part.get("credentials") or part.get("note") or ""
        detail = detail.removeprefix(found["state_dir"] + "/credentials/")
        view.add_row(name, part.get("url") or "-", mark, detail)
    return view
