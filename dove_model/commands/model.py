"""CLI commands: model area (``dove train``, ``dove evaluate``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption

DataOption = Annotated[
    Path | None,
    typer.Option("--data", "-d", help="Prepared dataset folder (default: data.prepared_dir/name)."),
]


def train_command(
    params_file: ParamsOption = DEFAULT_PARAMS,
    data: DataOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: train.out_dir).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="Training profile (default: train.profile).")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore an existing checkpoint in the output folder.")
    ] = False,
) -> None:
    """Train the profile's model family; resumes from the output folder's last checkpoint unless
    --fresh."""
    from dove_model.config import load_params, parse_params
    from dove_model.data.prepare import dataset_dir_or_prepared
    from dove_model.families.dispatch import train

    params = load_params(params_file)
    if profile is not None:
        raw = params.model_dump(mode="json", by_alias=True)
        raw["train"]["profile"] = profile
        params = parse_params(raw, source=f"{params_file} (--profile {profile})")
    result = train(
        dataset_dir_or_prepared(params.data, data),
        params,
        out if out is not None else Path(params.train.out_dir),
        resume=not fresh,
    )
    best = result.best_metrics.get("mR", float("nan"))
    typer.echo(
        f"best epoch {result.best_epoch} of {result.epochs_run} ({result.stop_reason}): "
        f"val mR {best:.2f} (random chance {result.random_chance_mR:.2f}); "
        f"model in {result.model_dir}"
    )


def evaluate_command(
    params_file: ParamsOption = DEFAULT_PARAMS,
    model_dir: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="Model directory (default: train.out_dir/model)."),
    ] = None,
    data: DataOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Metrics JSON (default: evaluate.out_file).")
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="Split to score (default: evaluate.split).")
    ] = None,
) -> None:
    """Score a split exhaustively and two-stage; write the metrics JSON."""
    from dove_model.config import load_params
    from dove_model.data.prepare import dataset_dir_or_prepared
    from dove_model.evaluation.evaluate import evaluate
    from dove_model.training.run import trained_model_dir

    params = load_params(params_file)
    report = evaluate(
        model_dir if model_dir is not None else trained_model_dir(params.train.out_dir),
        dataset_dir_or_prepared(params.data, data),
        params,
        out if out is not None else Path(params.evaluate.out_file),
        split=split,
    )
    shown = {k: round(v, 2) for k, v in report.items() if isinstance(v, float)}
    typer.echo(json.dumps(shown))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
