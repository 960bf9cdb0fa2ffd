"""What the search page's map needs from the service (issue 28): whether the served index has
footprints, their extent, and the basemap (``serve.map``; none by default: offline)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dove_model.config import MapParams
from dove_model.index.archive import ArchiveIndex


def map_config(archive: ArchiveIndex, settings: MapParams) -> dict[str, Any]:
    """``{"geo": bool, "bounds": [w, s, e, n] | None, "basemap": {...} | None}``; the
    bounds are the footprints' extent in lon/lat (None without geo metadata)."""
    return {
        "geo": archive.geo is not None,
        "bounds": _bounds(archive),
        "basemap": None
        if settings.basemap_url is None
        else {
            "url": settings.basemap_url,
            "attribution": settings.attribution,
            "max_zoom": settings.max_zoom,
        },
    }


def _bounds(archive: ArchiveIndex) -> list[float] | None:
    geo = archive.geo
    if geo is None:
        return None
    footprints = geo.geometry[geo.geometry.notna() & ~geo.geometry.is_empty]
    if footprints.empty:
        return None
    bounds = np.asarray(footprints.total_bounds, dtype=float)
    return [round(float(v), 7) for v in bounds]
