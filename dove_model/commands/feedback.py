"""CLI commands: the feedback loop (``dove feedback export|signal|monitor``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption

feedback_app = typer.Typer(
    help="The feedback loop: export users' marks into a new data version, watch query drift."
)


@feedback_app.command("export")
def export(
    params_file: ParamsOption = DEFAULT_PARAMS,
    dataset_dir: Annotated[
        Path | None, typer.Option(help="Prepared dataset (default: the prepared one).")
    ] = None,
    push: Annotated[bool, typer.Option(help="dvc push the new data version.")] = False,
) -> None:
    """Marks -> caption-image pairs + hard negatives, through the GE gates, into
    ``feedback.export.dir`` (inside data/): a new DVC data version, and the stamp
    ``feedback.export.stamp`` that makes the next ``dvc repro`` re-prepare. Exit 1 when a
    critical expectation fails (nothing is written then)."""
    from dove_model.config import load_params
    from dove_model.data.prepare import dataset_dir_or_prepared
    from dove_model.errors import GateFailed
    from dove_model.feedback.export import export_feedback
    from dove_model.feedback.store import open_store

    params = load_params(params_file)
    store = open_store(params.feedback.query_log, os.environ)
    try:
        dataset = dataset_dir_or_prepared(params.data, dataset_dir)
        result = export_feedback(params, store, dataset, Path("."), push=push)
    finally:
        store.close()
    for check in result.checks:
        mark = "ok " if check.success else ("FAIL" if check.severity == "critical" else "warn")
        typer.echo(f"{mark} {check.name} ({check.severity}) observed={check.observed}")
    typer.echo(json.dumps(result.counts))
    if not result.passed:
        raise GateFailed("feedback export refused: a critical expectation failed")
    typer.echo(f"wrote {result.written}; data version {result.data_version or '(no DVC repo)'}")


@feedback_app.command("signal")
def signal(params_file: ParamsOption = DEFAULT_PARAMS) -> None:
    """Export into a new data version if enough new feedback (or drift) calls for it; prints
    the decision as JSON (what the Airflow DAG runs before posting the data asset event)."""
    from dove_model.pipeline.feedback_signal import export_on_signal

    typer.echo(json.dumps(export_on_signal(".", str(params_file)), default=str, indent=2))


@feedback_app.command("monitor")
def monitor(params_file: ParamsOption = DEFAULT_PARAMS) -> None:
    """The champion's drift and online proxies: a dated HTML report with plots, latest.json
    and metrics.prom in ``monitoring.report_dir``."""
    from dove_model.pipeline.feedback_signal import monitor_champion

    typer.echo(json.dumps(monitor_champion(".", str(params_file)), default=str, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")
