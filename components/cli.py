"""``dove pipeline``: compile the KFP v2 pipeline, run it locally for real, or submit it.

The ``dove`` command finds this group through the entry point group ``dove.commands``
(pyproject.toml), so the library never imports ``components``. Heavy imports (kfp, the
pipeline) stay inside the commands: ``dove --help`` loads only this file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption

app = typer.Typer(help="Compile, run locally or submit the KFP v2 pipeline.")


@app.command("compile")
def compile_command(
    params_file: ParamsOption = DEFAULT_PARAMS,
    out: Annotated[
        Path | None, typer.Option(help="Output YAML (default: pipeline.compiled_file).")
    ] = None,
) -> None:
    """Compile the KFP v2 pipeline to YAML (commit the result)."""
    from components.compile import compile_pipeline
    from dove_model.config import load_params

    params = load_params(params_file)
    path = compile_pipeline(params, out or Path(params.pipeline.compiled_file))
    typer.echo(f"compiled {path}")


@app.command("run")
def run_command(
    params_file: ParamsOption = DEFAULT_PARAMS,
    local: Annotated[bool, typer.Option("--local", help="Run with KFP's local runner.")] = False,
    runner: Annotated[
        str,
        typer.Option(
            help="--local: subprocess (this venv) or docker (each component in a container of "
            "pipeline.image, through DOCKER_HOST, docker's daemon or podman's socket).",
        ),
    ] = "subprocess",
    host: Annotated[str | None, typer.Option(help="KFP endpoint to submit to.")] = None,
    data_version: Annotated[
        str | None, typer.Option(help="Data version (default: detected from the dataset).")
    ] = None,
) -> None:
    """Run the pipeline locally for real, or submit it to a KFP endpoint."""
    from dove_model.config import load_params
    from dove_model.errors import DoveError

    if local == (host is not None):
        raise DoveError("dove pipeline run: give exactly one of --local or --host URL")
    params = load_params(params_file)
    if local:
        from components.pipeline import build_pipeline
        from dove_model.pipeline.run import run_local

        with contextlib.ExitStack() as stack:
            if runner == "docker":
                from infra.images.engine import docker_api

                stack.enter_context(docker_api())
            outcome = run_local(
                build_pipeline, params, params_file, data_version=data_version, runner=runner
            )
        typer.echo(outcome.summary())
    else:
        from dove_model.pipeline.run import submit

        run_id = submit(params, params_file, host or "", data_version=data_version)
        typer.echo(f"submitted run {run_id} to {host}")
