"""A made-up ``chips.parquet`` over a synthetic dataset, for geo-index tests without scenes."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely.geometry import box

from dove_model.data.manifest import read_manifest
from dove_model.geo.outputs import CHIPS_FILE


def write_chips(dataset: Path) -> gpd.GeoDataFrame:
    """A chips table over the dataset's images: image i at lon i, lat 45 (1 x 1 degree),
    taken on day i + 1 of June 2024 (day 28 wraps to 1); image 0 also in a second chip one
    degree west; the last image in none."""
    ids = list(dict.fromkeys(read_manifest(dataset)["image_id"].astype(str)))
    rows = [(i, image_id, i) for i, image_id in enumerate(ids[:-1])] + [(99, ids[0], -1)]
    chips = gpd.GeoDataFrame(
        {
            "chip_id": [f"scene/r{n:04d}c0000" for n, _, _ in rows],
            "image_id": [image_id for _, image_id, _ in rows],
            "datetime": [f"2024-06-{(n % 28) + 1:02d}T10:00:00Z" for n, _, _ in rows],
            "crs": "EPSG:32632",
            "gsd": 10.0,
            "item_id": "scene",
            "collection": None,
        },
        geometry=[box(x, 45, x + 1, 46) for _, _, x in rows],
        crs="EPSG:4326",
    )
    chips.to_parquet(dataset / CHIPS_FILE, index=False)
    return chips
