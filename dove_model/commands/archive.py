"""CLI commands: geospatial archives (``dove archive ingest``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption

archive_app = typer.Typer(
    help="Geospatial archives: scenes (GeoTIFFs, STAC) tiled into georeferenced chips.",
    no_args_is_help=True,
)

SourceArgument = Annotated[
    str,
    typer.Argument(
        help="A folder of GeoTIFFs, one GeoTIFF, a static STAC catalog / collection / item "
        "(.json or a folder with catalog.json), or a STAC API URL."
    ),
]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write.")]
ChipSizeOption = Annotated[int | None, typer.Option(help="Chip side in pixels (default: 256).")]
OverlapOption = Annotated[
    int | None, typer.Option(help="Pixels shared by neighbouring chips (default: 0).")
]
GsdOption = Annotated[
    float | None,
    typer.Option(help="Target metres per pixel, resampled (default: each scene's own)."),
]
BandsOption = Annotated[
    str | None,
    typer.Option(
        help="1 or 3 bands by name or 1-based index: B4,B3,B2 | red,green,blue | 1,2,3 "
        "(default: RGB where the bands are named, else 1,2,3 of a 3-band file)."
    ),
]
AssetOption = Annotated[
    str | None, typer.Option(help="STAC asset key of the image (default: visual, else chosen).")
]
MaxNodataOption = Annotated[
    float | None, typer.Option(help="Skip chips with a larger nodata share (default: 0.5).")
]
FormatOption = Annotated[
    str | None, typer.Option("--format", help="Chip files: png | jpeg (default: png).")
]
SplitOption = Annotated[
    str | None, typer.Option(help="Manifest split of the chips (default: test).")
]
WorkersOption = Annotated[
    int | None, typer.Option(help="Worker processes (default: the usable CPU cores).")
]
CollectionOption = Annotated[
    list[str] | None, typer.Option(help="STAC collection id(s) to take (repeatable).")
]
BboxOption = Annotated[
    str | None, typer.Option(help="STAC API search: west,south,east,north (degrees).")
]
DatetimeOption = Annotated[
    str | None, typer.Option(help="STAC API search: an RFC 3339 time or interval (a/b).")
]
MaxItemsOption = Annotated[int | None, typer.Option(help="Take at most this many items.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(archive_app, name="archive")


@archive_app.command("ingest")
def ingest_command(
    source: SourceArgument,
    out: OutOption,
    chip_size: ChipSizeOption = None,
    overlap: OverlapOption = None,
    gsd: GsdOption = None,
    bands: BandsOption = None,
    asset: AssetOption = None,
    max_nodata: MaxNodataOption = None,
    image_format: FormatOption = None,
    split: SplitOption = None,
    workers: WorkersOption = None,
    collection: CollectionOption = None,
    bbox: BboxOption = None,
    datetime: DatetimeOption = None,
    max_items: MaxItemsOption = None,
) -> None:
    """Tile every scene of SOURCE into georeferenced chips: a dataset `dove index build -s`
    indexes, with chips.parquet (GeoParquet). A re-run resumes an interrupted one."""
    from dove_model.geo.ingest import ingest
    from dove_model.geo.settings import ingest_params, parse_bbox, source_query, split_list

    params = ingest_params(
        chip_size=chip_size,
        overlap=overlap,
        gsd=gsd,
        bands=split_list(bands),
        asset=asset,
        max_nodata=max_nodata,
        image_format=image_format,
        split=split,
        workers=workers,
    )
    query = source_query(
        collections=tuple(collection) if collection else None,
        bbox=parse_bbox(bbox),
        datetime=datetime,
        max_items=max_items,
    )
    try:
        summary = ingest(source, out, params, query)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: run the same command again to resume into {out}", err=True)
        raise typer.Exit(130) from None
    resumed = f", {summary.scenes_resumed} done before" if summary.scenes_resumed else ""
    typer.echo(
        f"ingested {summary.n_scenes} scenes{resumed} into {summary.out_dir}: "
        f"{summary.n_chips} chips ({summary.n_images} images; {summary.written} written now, "
        f"{summary.existing} already there), {summary.skipped_nodata} skipped for nodata, "
        f"in {summary.seconds:.1f} s"
    )


@archive_app.command("build")
def build_command(params_file: ParamsOption = DEFAULT_PARAMS) -> None:
    """Stage `archive_ingest`: ingest params.yaml's `archive.source` into `archive.out_dir`
    with the `archive.ingest` / `archive.query` settings (what `dvc repro` and the DAG run)."""
    from dove_model.config import load_params
    from dove_model.geo.stage import ingest_configured

    summary = ingest_configured(load_params(params_file).archive)
    typer.echo(
        f"ingested {summary.n_scenes} scenes into {summary.out_dir}: {summary.n_chips} chips "
        f"({summary.n_images} images), {summary.skipped_nodata} skipped for nodata"
    )


@archive_app.command("validate")
def validate_command(
    dataset_dir: Annotated[
        Path | None, typer.Argument(help="An ingested archive (default: archive.out_dir).")
    ] = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
    report_dir: Annotated[
        Path | None, typer.Option(help="Report folder (default: archive.report_dir).")
    ] = None,
) -> None:
    """Stage `archive_validate`: the geo gate (Great Expectations on the chips' footprints,
    CRS, times and counts); exit 1 on a critical failure."""
    from rich.console import Console

    from dove_model.config import load_params
    from dove_model.errors import GateFailed
    from dove_model.quality.archive_gate import validate_archive
    from dove_model.quality.summary import print_summary

    archive = load_params(params_file).archive
    result = validate_archive(
        dataset_dir or Path(archive.out_dir),
        archive.checks,
        report_dir or Path(archive.report_dir),
    )
    print_summary(result, Console(), gate="geo gate")
    if not result.passed:
        raise GateFailed(result.failure_message("geo gate"))
