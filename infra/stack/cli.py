"""`dove stack up | down | status | trigger`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="The local stack on this machine: PostgreSQL, MLflow, Airflow and the retrieval "
    "service, as processes or (--runtime containers) in containers of the pipeline image.",
    no_args_is_help=True,
)

ProjectOption = Annotated[
    Path, typer.Option("--project", help="The project folder (params.yaml, dags/).")
]
StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="Where the stack keeps its state (default: <project>/.stack)."
    ),
]


def _port(name: str, default_text: str) -> object:
    return typer.Option(
        f"--{name}-port", help=f"{default_text} (0: any free port); remembered once chosen."
    )


def _layout(project: Path, state_dir: Path | None):
    from infra.stack.config import Layout

    return Layout((state_dir or project.resolve() / ".stack").expanduser().resolve())


def _fail_cleanly(exc: Exception, logs: Path) -> None:
    """Errors from below (a driver, a socket) become the one-line StackError."""
    from infra.stack.config import StackError

    raise StackError(f"{type(exc).__name__}: {exc} (logs in {logs})") from None


@app.command("up")
def up_command(
    project: ProjectOption = Path("."),
    state_dir: StateOption = None,
    params_file: Annotated[
        Path | None, typer.Option("--params", "-p", help="Parameter file (default: params.yaml).")
    ] = None,
    dags_folder: Annotated[
        Path | None, typer.Option(help="Airflow's DAGs folder (default: <project>/dags).")
    ] = None,
    postgres_port: Annotated[
        int | None, _port("postgres", "PostgreSQL's port (default: a free one)")
    ] = None,
    mlflow_port: Annotated[
        int | None, _port("mlflow", "MLflow's port (default: 5000 when free)")
    ] = None,
    airflow_port: Annotated[
        int | None, _port("airflow", "Airflow's port (default: 8080 when free)")
    ] = None,
    service_port: Annotated[
        int | None, _port("service", "The service's port (default: 3000 when free)")
    ] = None,
    pg_bindir: Annotated[
        Path | None, typer.Option(help="The host's PostgreSQL bin folder (default: found).")
    ] = None,
    keep_paused: Annotated[
        bool, typer.Option(help="Leave the DAGs paused (default: unpause retraining and feedback).")
    ] = False,
    mlflow_workers: Annotated[int, typer.Option(help="MLflow server workers.")] = 1,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each service.")] = 180.0,
    runtime: Annotated[
        str,
        typer.Option(
            envvar="DOVE_STACK_RUNTIME",
            help="auto (default: containers when an engine runs them and pipeline.image is "
            "there, else processes) | containers (MLflow, Airflow and the service in "
            "containers of pipeline.image, rebuilt from the checkout; PostgreSQL stays a "
            "process) | processes.",
        ),
    ] = "auto",
) -> None:
    """Start PostgreSQL, MLflow, Airflow and (once there is a champion) the service; what
    runs already is left running. Prints each step, then the status table."""
    import httpx
    import psycopg2

    from infra.stack.config import resolve_options
    from infra.stack.containers import check_runtime
    from infra.stack.progress import Reporter
    from infra.stack.stack import up

    ports = {"postgres": postgres_port, "mlflow": mlflow_port}
    ports |= {"airflow": airflow_port, "service": service_port}
    options = resolve_options(
        project, state_dir, params_file, dags_folder, ports=ports, pg_bindir=pg_bindir,
        unpause=not keep_paused, mlflow_workers=mlflow_workers, timeout_s=timeout,
        runtime=check_runtime(runtime),
    )  # fmt: skip
    reporter = Reporter()
    try:
        up(options, reporter)
    except (OSError, subprocess.SubprocessError, httpx.HTTPError, psycopg2.Error) as exc:
        _fail_cleanly(exc, options.layout.logs)
    _print_status(options.layout, reporter)


def _print_status(layout, reporter) -> None:
    from rich.console import Console

    from infra.stack.status import collect, table

    Console().print(table(collect(layout)))
    reporter.console.print(f"credentials: {layout.credentials}  logs: {layout.logs}")


@app.command("down")
def down_command(project: ProjectOption = Path("."), state_dir: StateOption = None) -> None:
    """Stop the service, Airflow, MLflow (each process group: SIGTERM, then SIGKILL) and
    PostgreSQL (``pg_ctl stop -m fast``). Nothing running is fine."""
    from infra.stack.progress import Reporter
    from infra.stack.stack import down

    reporter = Reporter()
    stopped = down(_layout(project, state_dir), reporter)
    reporter.console.print("stack stopped" if stopped else "nothing was running")


@app.command("status")
def status_command(
    project: ProjectOption = Path("."),
    state_dir: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Each service's URL, health (really probed) and credentials file."""
    from rich.console import Console

    from infra.stack.status import collect, table

    found = collect(_layout(project, state_dir))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    else:
        Console().print(table(found))


@app.command("trigger")
def trigger_command(
    project: ProjectOption = Path("."),
    state_dir: StateOption = None,
    asset_event: Annotated[
        bool,
        typer.Option(help="Send a data-changed event on the DAG's asset instead of a manual run."),
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait until the run finishes.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 3600.0,
) -> None:
    """Retrain now through Airflow's REST API: a manual run of dove_retraining on the
    stack's project, or (--asset-event) an event on its data asset."""
    from infra.stack.trigger import trigger

    found = trigger(
        _layout(project, state_dir), asset_event=asset_event, wait=wait, timeout=timeout
    )
    typer.echo(json.dumps(found))
