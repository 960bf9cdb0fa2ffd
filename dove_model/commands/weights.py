"""CLI commands: offline pretrained weights (``dove weights list``, ``dove weights convert``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

weights_app = typer.Typer(
    help="Offline ImageNet backbone weights: where they come from and the local store.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def list_command() -> None:
    """The backbones with offline weights, their source package and store entry."""
    from rich.console import Console
    from rich.table import Table

    from dove_model.model.weights import status, store_dir

    table = Table(title=f"offline backbone weights (store: {store_dir()})")
    for column in ("backbone (timm)", "weights", "source package", "installed", "store"):
        table.add_column(column)
    for row in status():
        table.add_row(
            row.source.architecture,
            row.source.description,
            row.source.distribution,
            "yes" if row.installed else "no (uv sync)",
            row.stored.name if row.stored else "converted on first use",
        )
    Console().print(table)
    typer.echo(
        "Use one with model.backbone: <name> and model.pretrained: true; your own timm weights "
        "file (e.g. ImageNet resnet50) goes in model.pretrained_path."
    )


@weights_app.command("convert")
def convert_command(
    backbones: Annotated[
        list[str] | None, typer.Argument(help="Backbones to convert (default: all).")
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            help="Convert this .pth instead of the packaged file (one backbone only).",
            dir_okay=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Target .safetensors file (with --source)."),
    ] = None,
) -> None:
    """Convert packaged weights into the store now (training does it on first use)."""
    from dove_model.errors import ConfigError
    from dove_model.model.weights import SOURCES, convert, resolve, store_dir

    names = backbones or sorted(SOURCES)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ConfigError(f"no offline weights for {unknown}; known: {', '.join(sorted(SOURCES))}")
    if source is not None:
        if len(names) != 1:
            raise ConfigError("--source converts one file: name exactly one backbone")
        target = out or store_dir() / f"{names[0]}-custom.safetensors"
        typer.echo(f"{names[0]}: {convert(source, names[0], target)}")
        return
    for name in names:
        typer.echo(f"{name}: {resolve(name)}")
