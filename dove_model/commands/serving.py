"""CLI commands: serving area (`dove index build`, `merge`, `add`, `versions`, `use`,
`dove deploy`, `dove serve`).

Every command that writes an index writes a new version of the index root and flips its
``CURRENT`` pointer (dove_model/index/versions.py): a running service swaps to it live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption
from dove_model.config import Params

index_app = typer.Typer(help="The FAISS archive index the service searches.", no_args_is_help=True)

SourceOption = Annotated[
    Path | None,
    typer.Option(
        "--source",
        "-s",
        help="Prepared dataset folder or a plain folder of images "
        "(default: <data.prepared_dir>/<data.name>).",
    ),
]
IndexDirOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Index folder (default: index.out_dir).")
]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(index_app, name="index")
    app.command("deploy")(deploy_command)
    app.command("serve")(serve_command)


def _default_source(params: Params) -> Path:
    from dove_model.data.prepare import prepared_dataset_dir

    return prepared_dataset_dir(params.data)


@index_app.command("build")
def build_command(
    model_dir: Annotated[
        Path, typer.Option("--model-dir", "-m", help="Model directory that encodes the archive.")
    ],
    source: SourceOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Index folder (default: index.out_dir); with --shard the shard folder "
            "(default: <index.out_dir>-shards/shard-I-of-N).",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="I/N: encode only shard I (0-based) of N, chosen by a hash of the image id, "
            "into a shard folder; combine the N shards with `dove index merge`.",
        ),
    ] = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Encode an image archive once (progress bar) into a FAISS index folder, or one shard."""
    from dove_model.config import load_params
    from dove_model.index import build_index

    params = load_params(params_file)
    if shard is not None:
        _build_shard(model_dir, source or _default_source(params), params, out, shard)
        return
    folder = build_index(
        model_dir,
        source or _default_source(params),
        params,
        out or Path(params.index.out_dir),
        versioned=True,
    )
    _report_index(folder, params)


def _build_shard(
    model_dir: Path, source: Path, params: Params, out: Path | None, spec_text: str
) -> None:
    from dove_model.index.shards import ShardSpec, build_shard, read_shard

    spec = ShardSpec.parse(spec_text)
    out = out or Path(f"{params.index.out_dir}-shards") / spec.name
    folder = build_shard(model_dir, source, params, out, spec)
    meta = read_shard(folder).meta
    typer.echo(
        f"shard {spec.index}/{spec.count} {folder}: {meta['n_images']} images, "
        f"{meta['n_captions']} captions, model {str(meta['model_fingerprint'])[:12]}"
    )


def _report_index(folder: Path, params: Params) -> None:
    from dove_model.index import load_archive

    archive = load_archive(folder, params.index)
    version = f" version {archive.version}" if archive.version else ""
    typer.echo(
        f"index {folder}{version}: {archive.n_images} images ({archive.meta['image_index']}), "
        f"{archive.n_captions} captions, model {archive.fingerprint[:12]}"
    )


@index_app.command("merge")
def merge_command(
    shards: Annotated[
        list[Path], typer.Argument(help="Shard folders written by `dove index build --shard`.")
    ],
    out: IndexDirOption = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Check the shards (one model, no image twice, all N present) and write one index folder."""
    from dove_model.config import load_params
    from dove_model.index.shards import merge_shards

    params = load_params(params_file)
    folder = merge_shards(shards, params.index, out or Path(params.index.out_dir), versioned=True)
    _report_index(folder, params)


@index_app.command("add")
def add_command(
    model_dir: Annotated[
        Path,
        typer.Option("--model-dir", "-m", help="Model directory; must be the one that built it."),
    ],
    source: SourceOption = None,
    index_dir: Annotated[
        Path | None,
        typer.Option("--index", help="Existing index folder (default: index.out_dir)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Index folder to write (default: a new version of --index)."
        ),
    ] = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Update an index to its archive: encode only new images (by content hash), drop removed
    ones, reuse the rest. Another model, or an index without hashes, needs `dove index build`."""
    from dove_model.config import load_params
    from dove_model.index.incremental import update_index

    params = load_params(params_file)
    report = update_index(
        model_dir,
        index_dir or Path(params.index.out_dir),
        source or _default_source(params),
        params,
        out,
        versioned=True,
    )
    typer.echo(
        f"added {report.added} images, removed {report.removed}, kept {report.kept} "
        f"(encoded {report.added} images, {report.captions_encoded} caption texts)"
    )
    _report_index(report.folder, params)


IndexRootOption = Annotated[
    Path | None, typer.Option("--index", help="Index root (default: index.out_dir).")
]


@index_app.command("versions")
def versions_command(
    index_dir: IndexRootOption = None, params_file: ParamsOption = DEFAULT_PARAMS
) -> None:
    """List the versions of an index root, oldest first; the current one is marked *."""
    from dove_model.config import load_params
    from dove_model.index.archive import read_meta
    from dove_model.index.versions import list_versions, read_pointer, version_dir

    root = index_dir or Path(load_params(params_file).index.out_dir)
    current = read_pointer(root)
    for version in list_versions(root):
        try:
            meta = read_meta(version_dir(root, version))
            about = f"{meta.get('n_images')} images, model {str(meta['model_fingerprint'])[:12]}"
        except Exception as exc:  # a broken version is listed, not fatal
            about = f"unreadable: {exc}"
        typer.echo(f"{'*' if version == current else ' '} {version}  {about}")


@index_app.command("use")
def use_command(
    version: Annotated[str, typer.Argument(help="Version id (see `dove index versions`).")],
    index_dir: IndexRootOption = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Point the index root's CURRENT at VERSION (a rollback): running services swap to it."""
    from dove_model.config import load_params
    from dove_model.index.versions import set_current

    params = load_params(params_file)
    root = index_dir or Path(params.index.out_dir)
    set_current(root, version)
    _report_index(root, params)


def deploy_command(
    source: SourceOption = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Deploy this model directory instead of the MLflow champion."),
    ] = None,
    out: IndexDirOption = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Import the champion (or a model dir) into the BentoML store and index the archive."""
    from dove_model.config import load_params
    from dove_model.serving.deploy import deploy

    params = load_params(params_file)
    result = deploy(params, source or _default_source(params), model_dir=model_dir, index_dir=out)
    typer.echo(f"BentoML model {result.model.tag} ({result.model.labels})")
    typer.echo(f"index {result.index_dir}")
    typer.echo("next: `dove serve` (or `bentoml build` for a self-contained Bento)")


def serve_command(
    params_file: ParamsOption = DEFAULT_PARAMS,
    index_dir: Annotated[
        Path | None, typer.Option("--index", help="Index folder (default: index.out_dir).")
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Serve this model directory instead of the BentoML store model."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port).")] = None,
    example: Annotated[
        str | None, typer.Option(help="Run this query once started and print its top results.")
    ] = None,
) -> None:
    """Start `bentoml serve service:DoveRetrieval` on serve.host and print the page URL."""
    from dove_model.config import load_params
    from dove_model.serving.launch import serve_forever, serving_env

    params = load_params(params_file)
    env = serving_env(
        params_file=params_file.resolve(),
        model_dir=model_dir,
        index_dir=(index_dir or Path(params.index.out_dir)).resolve(),
    )
    serve_forever(env, host=params.serve.host, port=port or params.serve.port, example=example)
