"""Where a chip lies on the Earth: its footprint as an EPSG:4326 polygon, its CRS as text and
its ground sample distance in metres.

The footprint is the chip's square in the native CRS with every edge densified (a straight
edge in UTM is curved in longitude/latitude), transformed by GDAL (``transform_geom``, which
cuts it at the antimeridian into a MultiPolygon) with x = longitude, y = latitude (GeoJSON
order), exterior ring counter-clockwise.
"""

from __future__ import annotations

import numpy as np
from pyproj import Geod
from rasterio.crs import CRS
from rasterio.warp import transform_geom
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from dove_model.geo.tiling import ChipWindow, TargetGrid

WGS84 = "EPSG:4326"
POINTS_PER_EDGE = 8


def crs_text(crs: CRS) -> str:
    """``EPSG:<code>`` where the CRS is exactly an EPSG one, else its WKT."""
    code = crs.to_epsg(confidence_threshold=100)
    return f"EPSG:{code}" if code else crs.to_wkt()


def densified_ring(
    bounds: tuple[float, float, float, float], points_per_edge: int = POINTS_PER_EDGE
) -> list[tuple[float, float]]:
    """The closed counter-clockwise ring of ``bounds``, ``points_per_edge`` segments an edge."""
    left, bottom, right, top = bounds
    t = np.linspace(0.0, 1.0, points_per_edge, endpoint=False)
    xs = np.concatenate(
        [
            left + (right - left) * t,
            np.full_like(t, right),
            right - (right - left) * t,
            np.full_like(t, left),
        ]
    )
    ys = np.concatenate(
        [
            np.full_like(t, bottom),
            bottom + (top - bottom) * t,
            np.full_like(t, top),
            top - (top - bottom) * t,
        ]
    )
    ring = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    return [*ring, ring[0]]


def footprint(
    bounds: tuple[float, float, float, float], crs: str, points_per_edge: int = POINTS_PER_EDGE
) -> BaseGeometry:
    """``bounds`` (in ``crs``) as a longitude/latitude polygon."""
    geom = {"type": "Polygon", "coordinates": [densified_ring(bounds, points_per_edge)]}
    out = shape(transform_geom(crs, WGS84, geom, antimeridian_cutting=True))
    return orient(out, 1.0) if isinstance(out, Polygon) else out


def chip_footprint(grid: TargetGrid, window: ChipWindow) -> BaseGeometry:
    return footprint(window.bounds(grid), grid.crs)


def gsd_metres(crs: CRS, pixel: float, centre: tuple[float, float]) -> float:
    """The pixel size in metres: by the CRS's unit for a projected CRS, else (degrees) the
    geodesic mean of one pixel east-west and north-south at ``centre`` (lon, lat)."""
    if crs.is_projected:
        return float(pixel * crs.linear_units_factor[1])
    lon, lat = centre
    geod = Geod(ellps="WGS84")
    _, _, east = geod.inv(lon, lat, lon + pixel, lat)
    _, _, north = geod.inv(lon, lat, lon, lat + pixel)
    return float((east + north) / 2)
