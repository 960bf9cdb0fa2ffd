"""Build the project's images from the package registries alone.

1. ``debian``  the Debian 12 root: pulled from a registry when ``--debian-image`` names one,
               else made here from Debian's packages (``mmdebstrap`` + ``import``), with this
               host's extra certificate authorities (an internal mirror behind a TLS proxy)
2. ``python``  Dockerfile.base, target ``python``: Debian's Python 3.11 (what images run on)
3. ``base``    Dockerfile.base, target ``uv``: python + uv from PyPI (what images build on)
4. ``pipeline`` infra/docker/Dockerfile: the locked environment, every KFP component
5. ``serving`` ``bentoml build`` + ``bentoml containerize`` on ``base``: the service with the
               model in the BentoML store (``dove deploy`` puts the champion there)
6. ``postgres`` Dockerfile.postgres: Debian's PostgreSQL 15 on ``debian`` (the local stack's
               database when it runs in containers)

Each step prints its time and the image's size. The Debian root is reused when present
(``--rebuild`` makes it again); every other step is rebuilt, which the engine's layer cache
makes a matter of seconds when nothing changed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dove_model.errors import ConfigError
from dove_model.serving.page_assets import DEFAULT_OUT, default_cache_dir, vendor
from infra.images.engine import REPO_ROOT, Engine, build_args

DOCKER_DIR = REPO_ROOT / "infra" / "docker"
LOCAL_DEBIAN = "localhost/dove-ops/debian:bookworm"
PYTHON_BASE = "localhost/dove-ops/python:bookworm"
BUILD_BASE = "localhost/dove-ops/base:bookworm"
POSTGRES_IMAGE = "localhost/dove-ops/postgres:15"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
STEPS = ("debian", "python", "base", "pipeline", "serving", "postgres")
IMAGES = ("pipeline", "serving", "postgres")  # what `dove images build` is asked for


@dataclass(frozen=True)
class ImageSettings:
    """What to build and how; the defaults build everything air-gapped."""

    pipeline_tag: str
    serving_tag: str
    debian_image: str = LOCAL_DEBIAN
    debian_mirror: str = DEBIAN_MIRROR
    revision: str = "unknown"
    rebuild: bool = False
    bento: str | None = None  # the Bento to containerize (default: build one now)


@dataclass(frozen=True)
class BuiltImage:
    step: str
    tag: str
    seconds: float
    size_bytes: int | None
    reused: bool


Report = Callable[[BuiltImage], None]


def git_revision(root: Path = REPO_ROOT) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def image_size(engine: Engine, tag: str) -> int | None:
    if engine.name == "buildah":
        return None
    done = engine.run("image", "inspect", "--format", "{{.Size}}", tag, check=False)
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def _timed(
    engine: Engine, step: str, tag: str, make: Callable[[], None], reuse: bool
) -> BuiltImage:
    start = time.perf_counter()
    reused = reuse and engine.image_exists(tag)
    if not reused:
        make()
    return BuiltImage(step, tag, time.perf_counter() - start, image_size(engine, tag), reused)


def _extra_ca_files(folder: Path = EXTRA_CA_DIR) -> list[Path]:
    return sorted(folder.glob("*.crt")) if folder.is_dir() else []


def debian_rootfs(engine: Engine, settings: ImageSettings) -> None:
    """Debian 12 from Debian's packages: mmdebstrap a minimal root, import it as an image."""
    if shutil.which("mmdebstrap") is None:
        raise ConfigError(
            "mmdebstrap not found: it makes the Debian base from Debian's packages where no "
            "image registry is reachable (apt-get install mmdebstrap), or pass "
            "--debian-image docker.io/library/debian:bookworm-slim"
        )
    hooks = ['--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*']
    if _extra_ca_files():
        hooks[:0] = [
            f'--customize-hook=cp {EXTRA_CA_DIR}/*.crt "$1/usr/local/share/ca-certificates/"',
            '--customize-hook=chroot "$1" update-ca-certificates',
        ]
    with tempfile.TemporaryDirectory(prefix="dove-debian-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        command = [
            "mmdebstrap", "--quiet", "--variant=minbase", "--include=ca-certificates",
            *hooks, "bookworm", str(rootfs), settings.debian_mirror,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ConfigError(f"mmdebstrap failed:\n{(done.stdout + done.stderr)[-3000:]}")
        engine.run("import", "--change", 'CMD ["bash"]', str(rootfs), settings.debian_image)


def _build(engine: Engine, dockerfile: Path, tag: str, args: dict[str, str], *extra: str) -> None:
    command = ["build", "-f", str(dockerfile), *build_args(args), *extra, "-t", tag]
    if "REVISION" in args:
        # buildah's layer cache keys a LABEL on its text, not on the build argument in it: a
        # rebuild of the same content at a new commit would keep the old commit's label
        command += ["--label", f"org.opencontainers.image.revision={args['REVISION']}"]
    if engine.name != "docker":
        command += ["--layers"]
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if ignore.is_file() and engine.name != "docker":  # BuildKit finds it by its name
        command += ["--ignorefile", str(ignore)]
    engine.run(*command, str(REPO_ROOT if ignore.is_file() else DOCKER_DIR))


def build_debian(engine: Engine, settings: ImageSettings, report: Report) -> None:
    """The Debian root made here, unless a registry's image was named (reused when present)."""
    if settings.debian_image == LOCAL_DEBIAN:
        make = lambda: debian_rootfs(engine, settings)  # noqa: E731
        report(_timed(engine, "debian", LOCAL_DEBIAN, make, reuse=not settings.rebuild))


def build_bases(engine: Engine, settings: ImageSettings, report: Report) -> None:
    debian = {"DEBIAN_IMAGE": settings.debian_image}
    base_file = DOCKER_DIR / "Dockerfile.base"
    for step, tag, target in (("python", PYTHON_BASE, "python"), ("base", BUILD_BASE, "uv")):
        make = lambda tag=tag, target=target: _build(  # noqa: E731
            engine, base_file, tag, debian, "--target", target
        )
        report(_timed(engine, step, tag, make, reuse=False))  # the engine's cache: seconds


def build_pipeline(engine: Engine, settings: ImageSettings, report: Report) -> None:
    args = {"BUILD_BASE": BUILD_BASE, "RUNTIME_BASE": PYTHON_BASE, "REVISION": settings.revision}
    make = lambda: _build(engine, DOCKER_DIR / "Dockerfile", settings.pipeline_tag, args)  # noqa: E731
    report(_timed(engine, "pipeline", settings.pipeline_tag, make, reuse=False))


def build_bento(environ: dict[str, str] | None = None) -> str:
    """``bentoml build`` from bentofile.yaml (offline: the project's exported lock); its tag.
    The page's npm files are vendored first (a no-op when present), so the Bento has them."""
    vendor(REPO_ROOT / DEFAULT_OUT, cache_dir=default_cache_dir())
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "bentofile.yaml", "--output", "tag", "."],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    tag = done.stdout.strip().splitlines()[-1].removeprefix("__tag__:") if done.stdout else ""
    if done.returncode != 0 or not tag:
        tail = (done.stdout + done.stderr)[-3000:]
        raise ConfigError(
            "bentoml build failed (the Bento needs the model in the BentoML store: "
            f"`dove deploy` after a training run, or `make demo`):\n{tail}"
        )
    return tag


def build_serving(engine: Engine, settings: ImageSettings, report: Report) -> None:
    """The Bento containerized by BentoML on the project's base (bentofile.yaml names it)."""

    def make() -> None:
        bento = settings.bento or build_bento(engine.environ())
        command = [
            sys.executable, "-m", "bentoml", "containerize", bento,
            "--backend", engine.name, "--image-tag", settings.serving_tag,
        ]  # fmt: skip
        # BentoML 1.4 resolves the Bento's dockerfile_template (copied into a temporary build
        # context) and refuses it unless the working directory is above it
        done = subprocess.run(
            command,
            cwd=tempfile.gettempdir(),
            env=engine.environ(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ConfigError(
                f"bentoml containerize failed:\n{(done.stdout + done.stderr)[-3000:]}"
            )

    report(_timed(engine, "serving", settings.serving_tag, make, reuse=False))


def build_postgres(engine: Engine, settings: ImageSettings, report: Report) -> None:
    """PostgreSQL 15 from Debian's packages on the Debian base."""
    args = {"DEBIAN_IMAGE": settings.debian_image, "REVISION": settings.revision}
    make = lambda: _build(engine, DOCKER_DIR / "Dockerfile.postgres", POSTGRES_IMAGE, args)  # noqa: E731
    report(_timed(engine, "postgres", POSTGRES_IMAGE, make, reuse=False))


def build_images(
    engine: Engine, settings: ImageSettings, steps: Iterable[str], report: Report
) -> None:
    """Build the bases (reused when present) and then each of ``steps`` (pipeline, serving,
    postgres)."""
    wanted = list(steps)
    unknown = set(wanted) - set(IMAGES)
    if unknown:
        raise ConfigError(f"unknown image(s) {sorted(unknown)}: build {', '.join(IMAGES)}")
    build_debian(engine, settings, report)
    if {"pipeline", "serving"} & set(wanted):
        build_bases(engine, settings, report)
    if "pipeline" in wanted:
        build_pipeline(engine, settings, report)
    if "serving" in wanted:
        build_serving(engine, settings, report)
    if "postgres" in wanted:
        build_postgres(engine, settings, report)
    if engine.can_run:  # the images a tag moved away from: GBs each, no longer cache for anything
        engine.run("image", "prune", "--force", check=False)
