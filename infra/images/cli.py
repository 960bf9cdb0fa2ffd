"""`dove images build`: the pipeline image, the BentoML serving image and the stack's
PostgreSQL image (`make images`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dove_model.commands.options import DEFAULT_PARAMS, ParamsOption

app = typer.Typer(
    help="Build the container images (pipeline, serving, postgres).", no_args_is_help=True
)

SERVING_TAG = "localhost/dove-ops/dove-retrieval:{version}"


def _version() -> str:
    from importlib.metadata import version

    return version("dove-ops")


@app.command("build")
def build_command(
    images: Annotated[
        list[str] | None,
        typer.Argument(help="pipeline, serving and/or postgres (default: all three)."),
    ] = None,
    params_file: ParamsOption = DEFAULT_PARAMS,
    engine: Annotated[
        str | None, typer.Option(help="docker | podman | buildah (default: the first found).")
    ] = None,
    debian_image: Annotated[
        str | None,
        typer.Option(
            help="A Debian 12 image from a reachable registry (e.g. "
            "docker.io/library/debian:bookworm-slim); default: made here from Debian packages."
        ),
    ] = None,
    debian_mirror: Annotated[
        str, typer.Option(help="The Debian mirror mmdebstrap installs from.")
    ] = "http://deb.debian.org/debian",
    serving_tag: Annotated[
        str | None, typer.Option(help=f"Serving image tag (default: {SERVING_TAG}).")
    ] = None,
    bento: Annotated[
        str | None, typer.Option(help="Containerize this Bento (default: `bentoml build` now).")
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="Make the base images again.")] = False,
) -> None:
    """Build the bases (reused when present), then the pipeline image (tagged
    ``pipeline.image``), the serving image and the stack's PostgreSQL image; prints each
    step's time and size."""
    from rich.console import Console

    from dove_model.config import load_params
    from infra.images.build import (
        IMAGES,
        LOCAL_DEBIAN,
        BuiltImage,
        ImageSettings,
        build_images,
        git_revision,
    )
    from infra.images.engine import find_engine

    params = load_params(params_file)
    found = find_engine(engine)
    settings = ImageSettings(
        pipeline_tag=params.pipeline.image,
        serving_tag=serving_tag or SERVING_TAG.format(version=_version()),
        debian_image=debian_image or LOCAL_DEBIAN,
        debian_mirror=debian_mirror,
        revision=git_revision(Path.cwd()),
        rebuild=rebuild,
        bento=bento,
    )
    console = Console(stderr=True)
    console.print(f"engine: {found.name} ({found.binary})")

    def report(built: BuiltImage) -> None:
        size = f"{built.size_bytes / 2**30:.2f} GiB" if built.size_bytes else "?"
        how = "reused" if built.reused else f"built in {built.seconds:.1f} s"
        console.print(f"{built.step:9} {built.tag}  {how}  {size}")

    with console.status("building images (the first build downloads the locked wheels)"):
        build_images(found, settings, images or list(IMAGES), report)
