"""The ``dove`` command line: one sub-command per stage, each a thin shell over the library.

Command modules live in ``dove_model/commands/`` (one per area) and import their heavy
dependencies inside the command functions, so ``dove --help`` stays fast. Command groups that
live above the library (``dove pipeline``, in ``components/cli.py``) are found through the
entry point group ``dove.commands`` (pyproject.toml): the library never imports them.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from dove_model.commands import archive, data, feedback, model, registry, serving, weights
from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption
from dove_model.errors import DoveError

app = typer.Typer(
    name="dove",
    help="DOVE-Ops: train, gate, register and serve DOVE remote sensing image-text retrieval.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """DOVE-Ops: train, gate, register and serve DOVE remote sensing image-text retrieval."""


COMMAND_GROUP = "dove.commands"  # entry points: name = the group, value = a typer.Typer


def add_command_groups(root: typer.Typer, group: str = COMMAND_GROUP) -> list[str]:
    """Add every installed command group of ``group`` under its entry point name.

    A group whose own package is not installed (an install from a wheel built without it)
    is left out with a one-line warning, so every other command still works."""
    names = []
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            commands = entry.load()
        except ModuleNotFoundError as exc:
            if exc.name != entry.module.split(".")[0]:
                raise
            print(f"warning: no `dove {entry.name}`: {entry.value}: {exc}", file=sys.stderr)
            continue
        root.add_typer(commands, name=entry.name)
        names.append(entry.name)
    return names


for _module in (archive, data, feedback, model, registry, serving, weights):
    _module.register(app)
add_command_groups(app)


@app.command("params")
def show_params(params_file: ParamsOption = DEFAULT_PARAMS) -> None:
    """Validate the parameter file and print it with every default filled in."""
    import yaml

    from dove_model.config import load_params

    params = load_params(params_file)
    typer.echo(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), sort_keys=False))


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except DoveError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
