"""One scene's plan: its bands, chip grid, resampling and stretch, read from its files'
headers and one decimated read (run in a worker process, before any chip is written).

Errors name the file: not readable by GDAL, no CRS, no georeferencing, an unknown band, a
target GSD in metres for a scene in degrees.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from dove_model.errors import ConfigError, DataFormatError
from dove_model.geo.bands import BandRef, FileInfo, resolve_bands
from dove_model.geo.footprints import crs_text, gsd_metres
from dove_model.geo.reading import band_groups, resampling_for
from dove_model.geo.settings import IngestParams
from dove_model.geo.sources import AssetRef, Scene, one_line, rfc3339
from dove_model.geo.stretch import BandStretch, estimate
from dove_model.geo.tiling import TargetGrid, target_grid


@dataclass(frozen=True)
class ScenePlan:
    scene: Scene
    bands: tuple[BandRef, ...]
    grid: TargetGrid
    resampling: str  # a rasterio Resampling name
    stretch: tuple[BandStretch, ...]  # per chip channel
    datetime: str | None  # RFC 3339 UTC
    crs: str  # the scene's CRS: EPSG:<code> or WKT
    gsd_m: float  # the chips' ground sample distance
    native_gsd_m: float  # the scene's own


def gdal_env(params: IngestParams) -> rasterio.Env:
    """GDAL settings of a worker: a bounded block cache, no folder listing on open."""
    return rasterio.Env(  # rasterio passes GDAL_CACHEMAX on in bytes
        GDAL_CACHEMAX=params.gdal_cache_mb * 2**20, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"
    )


def open_raster(href: str) -> Any:
    """``rasterio.open`` with a one-line DataFormatError for a file GDAL cannot read."""
    try:
        with warnings.catch_warnings():  # georeferencing is checked, with a clearer message
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(href)
    except RasterioError as exc:
        raise DataFormatError(f"{href}: not a readable GeoTIFF ({one_line(exc)})") from None


def file_info(asset: AssetRef) -> FileInfo:
    with open_raster(asset.href) as src:
        return FileInfo(
            count=src.count,
            dtypes=tuple(src.dtypes),
            descriptions=tuple(src.descriptions),
            colorinterp=tuple(c.name.lower() for c in src.colorinterp),
        )


def _cached(fn: Any) -> Any:
    cache: dict[str, FileInfo] = {}

    def info_of(asset: AssetRef) -> FileInfo:
        if asset.href not in cache:
            cache[asset.href] = fn(asset)
        return cache[asset.href]

    return info_of


def _tiff_time(tags: dict[str, str]) -> str | None:
    text = tags.get("TIFFTAG_DATETIME")
    if not text:
        return None
    try:
        return rfc3339(datetime.strptime(text.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC))
    except ValueError:
        return None


def _grid(src: Any, params: IngestParams) -> tuple[TargetGrid, float, float]:
    """The chip grid of the reference file, its pixel and the native pixel (CRS units)."""
    if src.crs is None:
        raise DataFormatError(f"{src.name}: no CRS (the file is not georeferenced)")
    if src.transform.is_identity:
        raise DataFormatError(f"{src.name}: no geotransform (the file is not georeferenced)")
    native = float(min(src.res))
    pixel = native
    if params.gsd is not None:
        if not src.crs.is_projected:
            raise ConfigError(
                f"{src.name}: a geographic CRS ({crs_text(src.crs)}): --gsd (metres) needs a "
                "projected CRS; leave --gsd out to keep the scene's own"
            )
        pixel = params.gsd / src.crs.linear_units_factor[1]
    return target_grid(tuple(src.bounds), crs_text(src.crs), pixel), pixel, native


def plan_scene(scene: Scene, params: IngestParams) -> ScenePlan:
    """Resolve the bands, the grid and the stretch of ``scene`` (raises a DoveError)."""
    with gdal_env(params):
        bands = resolve_bands(scene, params.bands, params.asset, _cached(file_info))
        with open_raster(bands[0].href) as src:
            grid, pixel, native = _grid(src, params)
            centre = (
                (src.bounds.left + src.bounds.right) / 2,
                (src.bounds.bottom + src.bounds.top) / 2,
            )
            crs, when = src.crs, scene.datetime or _tiff_time(src.tags())
        stretch: list[BandStretch] = [BandStretch()] * len(bands)
        for group in band_groups(bands):
            with open_raster(group.href) as src:
                found = estimate(src, group.indexes, params.percentiles, params.stretch_side)
            for channel, band_stretch in zip(group.channels, found, strict=True):
                stretch[channel] = band_stretch
    return ScenePlan(
        scene=scene,
        bands=bands,
        grid=grid,
        resampling=resampling_for(params.resampling, native, pixel).name,
        stretch=tuple(stretch),
        datetime=when,
        crs=grid.crs,
        gsd_m=gsd_metres(crs, pixel, centre),
        native_gsd_m=gsd_metres(crs, native, centre),
    )
