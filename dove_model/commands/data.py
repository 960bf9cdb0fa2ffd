"""CLI commands: data area (``dove data synth|import``, ``dove prepare``, ``dove validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption

data_app = typer.Typer(
    help="Render the synthetic dataset, import a real caption format, version data/ with DVC."
)

FORMAT_HELP = "Source format: karpathy | amfmn | pir | csv."


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("data/synth"),
    n_images: Annotated[
        int | None, typer.Option("--n-images", "-n", help="Override data.synth.n_images.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override data.synth.seed.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: CPUs).")] = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Render the synthetic remote sensing scenes (images + captions.csv), deterministic by seed."""
    from dove_model.config import load_params
    from dove_model.data.synth import render_synth

    synth_params = load_params(params_file).data.synth
    overrides: dict[str, Any] = {"n_images": n_images, "seed": seed}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        synth_params = synth_params.model_validate({**synth_params.model_dump(), **overrides})
    summary = render_synth(out, synth_params, workers=workers)
    splits = ", ".join(f"{k} {v}" for k, v in summary.split_counts.items())
    typer.echo(
        f"rendered {summary.n_images} images, {summary.n_captions} captions ({splits}) "
        f"into {summary.out_dir} in {summary.seconds:.1f} s "
        f"({summary.n_images / max(summary.seconds, 1e-9):.0f} images/s)"
    )


@data_app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="Annotation file or folder of the source.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Canonical dataset folder to write.")],
    images_dir: Annotated[
        Path | None, typer.Option(help="Folder of the images, if not beside the annotations.")
    ] = None,
    copy: Annotated[bool, typer.Option(help="Copy images instead of hard-linking.")] = False,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: folder name).")] = None,
) -> None:
    """Import a real caption format into the canonical layout (images + manifest.parquet)."""
    import json

    from dove_model.data.importer import import_dataset
    from dove_model.data.manifest import DATASET_INFO_FILE

    out_dir = import_dataset(fmt, path, out, images_dir=images_dir, link=not copy, name=name)
    info = json.loads((out_dir / DATASET_INFO_FILE).read_text(encoding="utf-8"))
    typer.echo(
        f"imported {info['n_images']} images, {info['n_captions']} captions into {out_dir} "
        f"({info['n_missing_images']} image files missing)"
    )
    for duplicate in info.get("duplicate_image_paths", []):
        lines = ", ".join(map(str, duplicate["lines"]))
        paths = ", ".join(map(repr, duplicate["paths"]))
        typer.echo(
            f"warning: {duplicate['file']} is named by several paths: lines {lines} ({paths})"
        )


@data_app.command("version")
def version(
    push: Annotated[bool, typer.Option(help="Push to the default DVC remote.")] = True,
    params_file: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Pull or render data/ if absent, then `dvc add data` (and `dvc push`); print the md5."""
    from dove_model.config import load_params
    from dove_model.data.default import ensure_default_data
    from dove_model.errors import ConfigError

    found = ensure_default_data(load_params(params_file), ".", push=push)
    if found is None:
        raise ConfigError(f"{Path.cwd()}: not a DVC repository (no .dvc/ folder)")
    typer.echo(f"data version {found.md5} ({found.n_files} files, {found.pushed} pushed)")


def prepare_command(params_file: ParamsOption = DEFAULT_PARAMS) -> None:
    """Stage `prepare`: build the canonical dataset that params.yaml (section data) names."""
    from dove_model.config import load_params
    from dove_model.data.prepare import prepare

    out_dir = prepare(load_params(params_file))
    typer.echo(f"prepared dataset: {out_dir}")


def validate_command(
    params_file: ParamsOption = DEFAULT_PARAMS,
    dataset_dir: Annotated[
        Path | None, typer.Option(help="Dataset folder (default: the prepared dataset).")
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option(help="Report folder (default: validate.report_dir).")
    ] = None,
) -> None:
    """Stage `validate`: Great Expectations gates; exit 1 on a critical failure."""
    from rich.console import Console

    from dove_model.config import load_params
    from dove_model.data.prepare import dataset_dir_or_prepared
    from dove_model.errors import GateFailed
    from dove_model.quality.summary import print_summary
    from dove_model.quality.validate import validate

    params = load_params(params_file)
    result = validate(
        dataset_dir_or_prepared(params.data, dataset_dir),
        params,
        report_dir or Path(params.validate_.report_dir),
    )
    print_summary(result, Console())
    if not result.passed:
        raise GateFailed(result.failure_message())


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(data_app, name="data")
    app.command("prepare")(prepare_command)
    app.command("validate")(validate_command)
