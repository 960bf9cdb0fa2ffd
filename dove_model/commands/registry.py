"""CLI commands: registry and pipeline area (register, promote, rollback, champion, pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption

pipeline_app = typer.Typer(help="Compile, run locally or submit the KFP v2 pipeline.")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("register")(register_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
    app.command("champion")(champion_command)
    app.add_typer(pipeline_app, name="pipeline")


def register_command(
    params_file: ParamsOption = DEFAULT_PARAMS,
    model_dir: Annotated[
        Path | None, typer.Option(help="Model directory (default: <train.out_dir>/model).")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Metrics JSON (default: evaluate.out_file).")
    ] = None,
    dataset_dir: Annotated[
        Path | None, typer.Option(help="Prepared dataset (default from params).")
    ] = None,
    validation_dir: Annotated[
        Path | None, typer.Option(help="Validation report folder (default from params).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the registration summary JSON.")] = Path(
        "reports/registration.json"
    ),
    plots_dir: Annotated[
        Path | None, typer.Option(help="Also keep the PNG plots here (for `dvc plots`).")
    ] = None,
) -> None:
    """Log the run and the pyfunc to MLflow, register it as challenger, promote if gated."""
    from dove_model.config import load_params
    from dove_model.pipeline.run import pipeline_data_version
    from dove_model.registry import detect_data_version
    from dove_model.registry import register as register_model

    params = load_params(params_file)
    dataset = dataset_dir or Path(params.data.prepared_dir) / params.data.name
    result = register_model(
        model_dir or Path(params.train.out_dir) / "model",
        metrics or Path(params.evaluate.out_file),
        params,
        detect_data_version(dataset),
        dataset_dir=dataset,
        validation_dir=validation_dir or Path(params.validate_.report_dir),
        out_file=out,
        run_key=pipeline_data_version(params),
        plots_dir=plots_dir,
    )
    typer.echo(f"registered {result.model_uri} (data version {result.data_version[:12]})")
    for change in result.alias_changes:
        typer.echo(f"  {change}")
    typer.echo(f"  {result.gate}")


def _print_changes(changes: list) -> None:
    if not changes:
        typer.echo("no alias changed")
    for change in changes:
        typer.echo(str(change))


def promote_command(
    version: Annotated[
        str | None, typer.Argument(help="Version to promote (default: the challenger).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Promote even if its recall gate failed.")] = False,
    params_file: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Make a version champion; the former champion becomes previous-champion."""
    from dove_model.config import load_params
    from dove_model.registry import promote

    _print_changes(promote(load_params(params_file), version, force=force))


def rollback_command(params_file: ParamsOption = DEFAULT_PARAMS) -> None:
    """Give champion back to previous-champion."""
    from dove_model.config import load_params
    from dove_model.registry import rollback

    _print_changes(rollback(load_params(params_file)))


def champion_command(params_file: ParamsOption = DEFAULT_PARAMS) -> None:
    """Show which version each alias points at."""
    from dove_model.config import load_params
    from dove_model.registry import alias_state, champion_uri

    params = load_params(params_file)
    for alias, version in alias_state(params).items():
        typer.echo(f"{alias}: {'v' + version if version else '(none)'}")
    typer.echo(f"uri: {champion_uri(params)}")


@pipeline_app.command("compile")
def pipeline_compile(
    params_file: ParamsOption = DEFAULT_PARAMS,
    out: Annotated[
        Path | None, typer.Option(help="Output YAML (default: pipeline.compiled_file).")
    ] = None,
) -> None:
    """Compile the KFP v2 pipeline to YAML (commit the result)."""
    from dove_model.config import load_params
    from dove_model.pipeline.compile import compile_pipeline

    params = load_params(params_file)
    path = compile_pipeline(params, out or Path(params.pipeline.compiled_file))
    typer.echo(f"compiled {path}")


@pipeline_app.command("run")
def pipeline_run(
    params_file: ParamsOption = DEFAULT_PARAMS,
    local: Annotated[
        bool, typer.Option("--local", help="Run with KFP's local SubprocessRunner.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="KFP endpoint to submit to.")] = None,
    data_version: Annotated[
        str | None, typer.Option(help="Data version (default: detected from the dataset).")
    ] = None,
) -> None:
    """Run the pipeline locally for real, or submit it to a KFP endpoint."""
    from dove_model.config import load_params
    from dove_model.errors import DoveError
    from dove_model.pipeline.run import run_local, submit

    if local == (host is not None):
        raise DoveError("dove pipeline run: give exactly one of --local or --host URL")
    params = load_params(params_file)
    if local:
        outcome = run_local(params, params_file, data_version=data_version)
        typer.echo(outcome.summary())
    else:
        run_id = submit(params, params_file, host or "", data_version=data_version)
        typer.echo(f"submitted run {run_id} to {host}")
