"""Per-image geo metadata of an archive index: ``geo.parquet`` beside the vectors.

When the indexed dataset was written by ``dove archive ingest`` it holds ``chips.parquet``
(one GeoParquet row per chip). Every index write (``write_archive``: a full build, a shard
merge, ``dove index add``, a new version of a versioned root) derives from it one row per
index image, in the index's image order::

    geo.parquet   GeoParquet, EPSG:4326: image_id, geometry (the footprint; the union of the
                  footprints of the chips sharing the image's bytes), datetime and
                  datetime_end (earliest and latest acquisition of those chips, UTC; null
                  when unknown), crs, gsd, chip_id, item_id, collection (of the first chip),
                  n_chips (0: the image is in no chip row, its geometry is null)

An index of a dataset without ``chips.parquet`` has no ``geo.parquet``; geo filters are then
refused (``dove_model.index.geo_filter``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dove_model.errors import ConfigError

if TYPE_CHECKING:
    import geopandas as gpd

GEO_FILE = "geo.parquet"
WGS84 = "EPSG:4326"
FIRST_COLUMNS = ("crs", "gsd", "chip_id", "item_id", "collection")


def chips_of(images_root: Path | str) -> gpd.GeoDataFrame | None:
    """The dataset's chips table, or None when ``images_root`` has none."""
    import geopandas as gpd  # here: an index without geo never loads geopandas

    from dove_model.geo.outputs import CHIPS_FILE

    path = Path(images_root) / CHIPS_FILE
    if not path.is_file():
        return None
    try:
        return gpd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable chips table ({exc})") from None


def image_geo(chips: gpd.GeoDataFrame, image_ids: pd.Series) -> gpd.GeoDataFrame | None:
    """One row per ``image_ids`` entry (same order): the footprint union, time span and first
    chip's fields of the chips holding that image. None when no image is in ``chips``."""
    import geopandas as gpd
    import shapely

    ids = image_ids.astype(str).reset_index(drop=True)
    chips = chips.to_crs(WGS84) if chips.crs is not None else chips.set_crs(WGS84)
    chips = chips[chips["image_id"].astype(str).isin(set(ids))]
    if chips.empty:
        return None
    chips = chips.sort_values("chip_id", kind="stable")
    when = pd.to_datetime(chips["datetime"], utc=True, errors="coerce", format="ISO8601")
    keyed = pd.DataFrame({"image_id": chips["image_id"].astype(str), "when": when})
    grouped = keyed.groupby("image_id", sort=False)["when"]
    first = chips.drop_duplicates("image_id")
    first = first.set_index(first["image_id"].astype(str))
    shapes = {
        str(image_id): shapely.union_all(np.asarray(group.geometry.values))
        for image_id, group in chips.groupby(chips["image_id"].astype(str), sort=False)
    }
    frame = pd.DataFrame({"image_id": ids})
    frame["datetime"] = ids.map(grouped.min()).astype("datetime64[ns, UTC]")
    frame["datetime_end"] = ids.map(grouped.max()).astype("datetime64[ns, UTC]")
    for column in FIRST_COLUMNS:
        values = first[column] if column in first else pd.Series(dtype=object)
        frame[column] = ids.map(values)
    frame["gsd"] = pd.to_numeric(frame["gsd"], errors="coerce").astype(float)
    frame["n_chips"] = ids.map(chips["image_id"].astype(str).value_counts()).fillna(0).astype(int)
    geometry = gpd.GeoSeries([shapes.get(i) for i in ids], crs=WGS84)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=WGS84)


def geo_for_index(images_root: Path | str, images: pd.DataFrame) -> gpd.GeoDataFrame | None:
    """The ``geo.parquet`` rows for an index of ``images`` over ``images_root``, or None."""
    chips = chips_of(images_root)
    if chips is None or "image_id" not in chips:
        return None
    return image_geo(chips, images["image_id"])


def write_geo(folder: Path, geo: gpd.GeoDataFrame) -> None:
    geo.reset_index(drop=True).to_parquet(folder / GEO_FILE, index=False)


def read_geo(folder: Path, n_images: int) -> gpd.GeoDataFrame | None:
    """The index folder's geo rows (checked to be one per image), or None without a file."""
    path = Path(folder) / GEO_FILE
    if not path.is_file():
        return None
    import geopandas as gpd

    try:
        geo = gpd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable geo table ({exc})") from None
    if len(geo) != n_images:
        raise ConfigError(f"{path}: {len(geo)} geo rows for {n_images} images")
    return geo
