"""Where scenes come from: a folder of GeoTIFFs, one GeoTIFF, a static STAC catalog,
collection, item or item collection on disk (pystac), or a STAC API (pystac-client).

Every source becomes a list of :class:`Scene`: an id, its acquisition time, and the raster
assets (href + STAC band metadata) its chips are read from. Nothing is opened with GDAL here;
``dove_model.geo.plan`` opens the files, in the worker processes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dove_model.errors import ConfigError, DataFormatError, DoveError
from dove_model.geo.settings import SourceQuery

GEOTIFF_SUFFIXES = (".tif", ".tiff")
RASTER_SUFFIXES = (*GEOTIFF_SUFFIXES, ".jp2", ".vrt")
RASTER_MEDIA_PREFIXES = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff")
NON_DATA_ROLES = frozenset({"thumbnail", "overview", "metadata"})
CATALOG_FILES = ("catalog.json", "collection.json")
FOLDER_ASSET = "image"  # the asset key of a plain GeoTIFF scene


@dataclass(frozen=True)
class BandMeta:
    """One band as STAC describes it (``eo:bands`` or STAC 1.1 ``bands``)."""

    name: str | None
    common_name: str | None


@dataclass(frozen=True)
class AssetRef:
    key: str
    href: str  # absolute path or URL
    bands: tuple[BandMeta, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scene:
    """One acquisition: a STAC item, or one GeoTIFF of a folder."""

    id: str
    collection: str | None
    datetime: str | None  # RFC 3339, UTC ("2024-05-01T10:30:00Z"); None when unknown
    assets: tuple[AssetRef, ...]
    origin: str  # where it was listed, for messages

    @property
    def key(self) -> str:
        """A stable name for this scene's progress records (id, collection and hrefs)."""
        text = json.dumps([self.collection, self.id, [a.href for a in self.assets]])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @property
    def label(self) -> str:
        return f"{self.collection}/{self.id}" if self.collection else self.id

    def asset(self, key: str) -> AssetRef:
        for asset in self.assets:
            if asset.key == key:
                return asset
        keys = ", ".join(a.key for a in self.assets)
        raise DataFormatError(f"{self.origin}: no raster asset {key!r} (assets: {keys})")


def rfc3339(moment: datetime | None) -> str | None:
    """UTC with a ``Z``; a naive time is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def list_scenes(source: str, query: SourceQuery) -> list[Scene]:
    """The scenes of ``source`` (a path or an http(s) URL), in a stable order."""
    if is_url(source):
        return _remote_scenes(source, query)
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"{source}: no such file or folder")
    if query.is_search:
        raise ConfigError(f"{source}: --bbox and --datetime filter a STAC API search only")
    if path.is_dir():
        for name in CATALOG_FILES:
            if (path / name).is_file():
                return _static_scenes(path / name, query)
        return _folder_scenes(path, query)
    if path.suffix.lower() == ".json":
        return _static_scenes(path, query)
    return [file_scene(path, path.parent)]


def file_scene(path: Path, root: Path) -> Scene:
    scene_id = path.relative_to(root).with_suffix("").as_posix()
    asset = AssetRef(FOLDER_ASSET, str(path.resolve()), roles=("data",))
    return Scene(scene_id, None, None, (asset,), str(path))


def _folder_scenes(folder: Path, query: SourceQuery) -> list[Scene]:
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in GEOTIFF_SUFFIXES
    )
    if not files:
        raise DataFormatError(f"{folder}: no GeoTIFF files (*.tif, *.tiff) and no catalog.json")
    return [file_scene(p, folder) for p in files[: query.max_items]]


def _limited(items: Iterable[Any], query: SourceQuery) -> Iterator[Any]:
    if query.collections:
        wanted = set(query.collections)
        items = (item for item in items if item.collection_id in wanted)
    return itertools.islice(items, query.max_items)


def _static_scenes(path: Path, query: SourceQuery) -> list[Scene]:
    import pystac

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("type") == "FeatureCollection":
            items: Iterable[Any] = pystac.ItemCollection.from_dict(raw).items
            for item in items:
                item.set_self_href(None)
            items = [_absolute_assets(item, path) for item in items]
        else:
            stac = pystac.read_file(str(path.resolve()))
            items = [stac] if isinstance(stac, pystac.Item) else stac.get_items(recursive=True)
        scenes = [scene_from_item(item, str(path)) for item in _limited(items, query)]
    except DoveError:
        raise
    except Exception as exc:  # JSON, pystac and OS errors of every kind
        raise DataFormatError(f"{path}: not a readable STAC catalog ({one_line(exc)})") from None
    if not scenes:
        raise DataFormatError(f"{path}: the catalog has no items")
    return scenes


def _absolute_assets(item: Any, path: Path) -> Any:
    """Item collection members have no self link: resolve relative hrefs against the file."""
    for asset in item.assets.values():
        if not is_url(asset.href) and not Path(asset.href).is_absolute():
            asset.href = str((path.parent / asset.href).resolve())
    return item


def _remote_scenes(url: str, query: SourceQuery) -> list[Scene]:
    from pystac_client import Client, ConformanceClasses
    from pystac_client.warnings import FallbackToPystac, NoConformsTo

    try:
        with warnings.catch_warnings():  # a static catalog over http: known, handled below
            warnings.simplefilter("ignore", NoConformsTo)
            client = Client.open(url, timeout=30)
        if client.conforms_to(ConformanceClasses.ITEM_SEARCH):
            search = client.search(
                collections=list(query.collections) if query.collections else None,
                bbox=list(query.bbox) if query.bbox else None,
                datetime=query.datetime,
                max_items=query.max_items,
            )
            items: Iterable[Any] = search.items()
        elif query.is_search:
            raise ConfigError(f"{url}: a static catalog, not an API: no --bbox / --datetime")
        else:
            items = _limited(client.get_items(recursive=True), query)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FallbackToPystac)
            scenes = [scene_from_item(item, url) for item in items]
    except DoveError:
        raise
    except Exception as exc:  # requests, pystac-client and JSON errors
        raise ConfigError(f"{url}: STAC source not reachable ({one_line(exc)})") from None
    if not scenes:
        raise DataFormatError(f"{url}: the search returned no items")
    return scenes


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def scene_from_item(item: Any, origin: str) -> Scene:
    """A :class:`Scene` of a ``pystac.Item``: its raster assets, in the item's order."""
    assets = tuple(
        AssetRef(key, asset.get_absolute_href() or asset.href, band_meta(asset), asset_roles(asset))
        for key, asset in item.assets.items()
        if is_raster_asset(asset)
    )
    if not assets:
        raise DataFormatError(f"{origin}: item {item.id!r} has no GeoTIFF (raster) asset")
    moment = item.datetime or _parse_time(item.properties.get("start_datetime"))
    return Scene(item.id, item.collection_id, rfc3339(moment), assets, f"{origin}: item {item.id}")


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def asset_roles(asset: Any) -> tuple[str, ...]:
    return tuple(asset.roles or ())


def is_raster_asset(asset: Any) -> bool:
    """A GeoTIFF/COG/JPEG 2000 asset (by media type, else by suffix) that holds data."""
    roles = set(asset_roles(asset))
    if roles and roles <= NON_DATA_ROLES:
        return False
    media = (asset.media_type or "").lower()
    if media:
        return media.startswith(RASTER_MEDIA_PREFIXES)
    return asset.href.split("?")[0].lower().endswith(RASTER_SUFFIXES)


def band_meta(asset: Any) -> tuple[BandMeta, ...]:
    """Bands from ``eo:bands`` (STAC 1.0) or ``bands`` with ``eo:common_name`` (STAC 1.1)."""
    fields = asset.extra_fields
    raw = fields.get("eo:bands") or fields.get("bands") or []
    out = []
    for band in raw if isinstance(raw, list) else []:
        if isinstance(band, dict):
            common = band.get("common_name") or band.get("eo:common_name")
            out.append(BandMeta(_text(band.get("name")), _text(common)))
    return tuple(out)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
