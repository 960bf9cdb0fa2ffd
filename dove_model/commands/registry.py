"""CLI commands: the registry (register, promote, rollback, champion).

``dove pipeline`` lives with the pipeline it runs, in ``components/cli.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("register")(register_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
    app.command("champion")(champion_command)


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
    from dove_model.data.prepare import dataset_dir_or_prepared
    from dove_model.pipeline.run import pipeline_data_version
    from dove_model.registry import detect_data_version
    from dove_model.registry import register as register_model
    from dove_model.training.run import trained_model_dir

    params = load_params(params_file)
    dataset = dataset_dir_or_prepared(params.data, dataset_dir)
    result = register_model(
        model_dir or trained_model_dir(params.train.out_dir),
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
    from dove_model.registry.promotion import alias_families

    params = load_params(params_file)
    families = alias_families(params)
    for alias, version in alias_state(params).items():
        family = f" ({families.get(alias)})" if version and families.get(alias) else ""
        typer.echo(f"{alias}: {'v' + version + family if version else '(none)'}")
    typer.echo(f"uri: {champion_uri(params)}")
