"""Georeferenced test scenes and STAC catalogs, made on the spot (no downloads).

Scenes are real COGs (GDAL's COG driver: tiled, deflate, overviews) in a UTM CRS, painted by the
synthetic scene renderer (``dove_model.data.synth_scenes``) or, where the shared data is
present, from UCM-Captions images: an 8-bit RGB scene, a 16-bit 4-band Sentinel-2-like scene
(B2, B3, B4, B8 with band descriptions), a scene across a UTM zone edge, nodata borders, and
static STAC catalogs written with pystac (items with datetime, projection and eo bands).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from PIL import Image
from pyproj import Transformer
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.windows import Window

from dove_model.data.synth_scenes import SCENES
from dove_model.geo.footprints import footprint

UTM32N = "EPSG:32632"  # 6 E .. 12 E
S2_BANDS = (("B2", "blue"), ("B3", "green"), ("B4", "red"), ("B8", "nir"))
UCM_IMAGES = Path(__file__).resolve().parents[2].parent / "shared/datasets/ucm-captions/images"
RGB_INTERP = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


def utm_origin(lon: float, lat: float, crs: str = UTM32N) -> tuple[float, float]:
    """Easting and northing of (lon, lat) in ``crs``."""
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    return float(x), float(y)


def north_up(left: float, top: float, gsd: float) -> Affine:
    return Affine(gsd, 0.0, left, 0.0, -gsd, top)


def write_cog(
    path: Path,
    data: np.ndarray,
    crs: str | None,
    transform: Affine | None,
    *,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    colorinterp: Sequence[ColorInterp] | None = None,
    when: datetime | None = None,
    blocksize: int = 128,
) -> Path:
    """Write ``data`` (bands, rows, cols) as a COG (deflate, overviews by average)."""
    count, height, width = data.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "nodata": nodata,
    }
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), MemoryFile() as memory:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # crs None: on purpose
        with memory.open(**profile) as dataset:
            dataset.write(data)
            for index, text in enumerate(descriptions or (), start=1):
                dataset.set_band_description(index, text)
            if colorinterp:
                dataset.colorinterp = list(colorinterp)
            if when is not None:
                dataset.update_tags(TIFFTAG_DATETIME=when.strftime("%Y:%m:%d %H:%M:%S"))
        with memory.open() as dataset:
            rasterio.shutil.copy(
                dataset,
                path,
                driver="COG",
                compress="DEFLATE",
                blocksize=blocksize,
                overview_resampling="average",
            )
    return path


def synth_rgb(size: int, seed: int = 0, tile: int = 128) -> np.ndarray:
    """(3, size, size) uint8: a mosaic of synthetic scenes, values 1..255 (0 stays nodata)."""
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    labels = list(SCENES)
    for i, y in enumerate(range(0, size, tile)):
        for j, x in enumerate(range(0, size, tile)):
            index = i * 7 + j
            rng = np.random.default_rng([seed, index])
            image, _ = SCENES[labels[index % len(labels)]](rng, tile)
            part = np.asarray(image.convert("RGB"))
            canvas[y : y + tile, x : x + tile] = part[: size - y, : size - x]
    return np.maximum(canvas, 1).transpose(2, 0, 1).copy()


def s2_bands(rgb: np.ndarray) -> np.ndarray:
    """(4, h, w) uint16 B2, B3, B4, B8 reflectance-like values (about 200..3300) from RGB."""
    red, green, blue = (rgb[i].astype(np.uint16) for i in range(3))
    nir = np.clip(green.astype(np.int32) * 2 - red // 2 + 40, 1, 255).astype(np.uint16)
    return np.stack([200 + band * 12 for band in (blue, green, red, nir)])


@dataclass(frozen=True)
class SceneFile:
    """A written scene and what a catalog should say about it."""

    path: Path
    item_id: str
    when: datetime
    bands: tuple[tuple[str, str | None], ...] = ()  # STAC eo:bands (name, common name)
    extra_assets: dict[str, Path] = field(default_factory=dict)  # key -> single-band file


def rgb_scene(
    path: Path,
    size: int = 384,
    *,
    gsd: float = 1.0,
    lon: float = 9.0,
    lat: float = 48.0,
    seed: int = 0,
    nodata_border: int = 0,
    when: datetime | None = None,
) -> SceneFile:
    """An 8-bit RGB COG (colour interpretation RGB) at ``gsd`` m; ``nodata_border`` columns of
    nodata (0) on the left."""
    data = synth_rgb(size, seed)
    data[:, :, :nodata_border] = 0
    left, top = utm_origin(lon, lat)
    when = when or datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    write_cog(
        path,
        data,
        UTM32N,
        north_up(left, top, gsd),
        nodata=0 if nodata_border else None,
        colorinterp=RGB_INTERP,
        when=when,
    )
    return SceneFile(path, path.stem, when, (("red", "red"), ("green", "green"), ("blue", "blue")))


def s2_scene(
    path: Path,
    size: int = 300,
    *,
    gsd: float = 10.0,
    lon: float = 9.5,
    lat: float = 47.5,
    seed: int = 1,
    nodata_border: int = 0,
    when: datetime | None = None,
) -> SceneFile:
    """A 16-bit 4-band COG: B2, B3, B4, B8 (band descriptions), nodata 0 (left border)."""
    data = s2_bands(synth_rgb(size, seed))
    data[:, :, :nodata_border] = 0
    left, top = utm_origin(lon, lat)
    when = when or datetime(2024, 6, 2, 10, 20, 31, tzinfo=UTC)
    write_cog(
        path,
        data,
        UTM32N,
        north_up(left, top, gsd),
        nodata=0,
        descriptions=[name for name, _ in S2_BANDS],
        when=when,
    )
    return SceneFile(path, path.stem, when, S2_BANDS)


def zone_edge_scene(path: Path, size: int = 400, gsd: float = 10.0) -> SceneFile:
    """An RGB scene in UTM 32N whose east part lies beyond the zone's edge at 12 E (lat 47)."""
    return rgb_scene(path, size, gsd=gsd, lon=11.98, lat=47.0, seed=3)


def split_bands(scene: SceneFile, folder: Path) -> SceneFile:
    """The scene as one single-band COG per band: its catalog item has assets ``blue``,
    ``green``, ... (as Sentinel-2 items have them) instead of the one multi-band file."""
    extra: dict[str, Path] = {}
    with rasterio.open(scene.path) as src:
        for index, (name, common) in enumerate(scene.bands, start=1):
            key = common or name
            extra[key] = write_cog(
                folder / f"{scene.item_id}_{name}.tif",
                src.read([index]),
                UTM32N,
                src.transform,
                nodata=src.nodata,
                descriptions=[name],
            )
    return SceneFile(scene.path, scene.item_id, scene.when, scene.bands, extra)


def ucm_images(n: int = 4) -> list[Path] | None:
    """The first ``n`` UCM-Captions images, or None where ../shared/datasets is absent."""
    if not UCM_IMAGES.is_dir():
        return None
    files = sorted(UCM_IMAGES.glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
    return files[:n] if len(files) >= n else None


def ucm_scene(path: Path, images: Sequence[Path], gsd: float = 0.3) -> SceneFile:
    """UCM images (256 x 256, about 0.3 m) side by side in a 2-column RGB COG mosaic."""
    tiles = [np.asarray(Image.open(p).convert("RGB").resize((256, 256))) for p in images]
    rows = [np.concatenate(tiles[i : i + 2], axis=1) for i in range(0, len(tiles), 2)]
    mosaic = np.concatenate(rows, axis=0).transpose(2, 0, 1).copy()
    left, top = utm_origin(9.2, 48.1)
    when = datetime(2010, 1, 1, tzinfo=UTC)
    write_cog(path, mosaic, UTM32N, north_up(left, top, gsd), colorinterp=RGB_INTERP, when=when)
    return SceneFile(path, path.stem, when)


def write_catalog(root: Path, scenes: Sequence[SceneFile], collection: str = "test-scenes") -> Path:
    """A self-contained static STAC catalog (catalog -> collection -> items) over ``scenes``;
    returns the path of ``catalog.json``. Assets keep relative hrefs to the scene files."""
    import pystac

    items = [_item(scene) for scene in scenes]
    extent = pystac.Extent(
        pystac.SpatialExtent([_union_bbox([i.bbox for i in items])]),
        pystac.TemporalExtent([[min(s.when for s in scenes), max(s.when for s in scenes)]]),
    )
    coll = pystac.Collection(collection, "Scenes for the archive ingest tests", extent)
    coll.add_items(items)
    catalog = pystac.Catalog("test-catalog", "Test archive")
    catalog.add_child(coll)
    catalog.normalize_hrefs(str(root))
    for item in items:
        for asset in item.assets.values():
            asset.href = str(Path(asset.href).resolve())
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _union_bbox(boxes: Sequence[Sequence[float] | None]) -> list[float]:
    arr = np.array([b for b in boxes if b is not None])
    return [
        float(arr[:, 0].min()),
        float(arr[:, 1].min()),
        float(arr[:, 2].max()),
        float(arr[:, 3].max()),
    ]


def _item(scene: SceneFile) -> object:
    import pystac
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.projection import ProjectionExtension

    with rasterio.open(scene.path) as src:
        geom = footprint(tuple(src.bounds), src.crs.to_string())
        shape, transform, epsg = [src.height, src.width], list(src.transform)[:6], src.crs.to_epsg()
    item = pystac.Item(scene.item_id, geom.__geo_interface__, list(geom.bounds), scene.when, {})
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        epsg=epsg, shape=shape, transform=transform
    )
    EOExtension.add_to(item)
    bands = [Band.create(name=n, common_name=c) for n, c in scene.bands]
    assets: dict[str, tuple[Path, list[object]]] = {}
    if not scene.extra_assets:
        assets["image"] = (scene.path, bands)
    for (name, common), (key, path) in zip(scene.bands, scene.extra_assets.items(), strict=False):
        assets[key] = (path, [Band.create(name=name, common_name=common)])
    for key, (path, asset_bands) in assets.items():
        asset = pystac.Asset(str(path), media_type=pystac.MediaType.COG, roles=["data"])
        item.add_asset(key, asset)
        if asset_bands:
            EOExtension.ext(asset).apply(bands=asset_bands)  # type: ignore[arg-type]
    return item


def write_big_cog(
    path: Path,
    width: int,
    height: int,
    block: Callable[[Window], np.ndarray],
    *,
    count: int,
    dtype: str,
    transform: Affine,
    crs: str = UTM32N,
    nodata: float | None = 0,
    descriptions: Sequence[str] | None = None,
    step: int = 1024,
) -> Path:
    """A large COG written strip by strip from ``block(window)`` (never whole in memory): a
    tiled GTiff first, then GDAL's COG copy (overviews), both streamed."""
    tmp = path.with_suffix(".strips.tif")
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "DEFLATE",
    }
    with rasterio.open(tmp, "w", **profile) as dst:
        for index, text in enumerate(descriptions or (), start=1):
            dst.set_band_description(index, text)
        for row in range(0, height, step):
            window = Window(0, row, width, min(step, height - row))
            dst.write(block(window), window=window)
    with rasterio.Env(GDAL_CACHEMAX=256):
        rasterio.shutil.copy(
            tmp,
            path,
            driver="COG",
            compress="DEFLATE",
            blocksize=512,
            overview_resampling="average",
            num_threads=1,
        )
    tmp.unlink()
    return path
