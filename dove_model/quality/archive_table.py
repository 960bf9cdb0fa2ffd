"""The tables the geo gate checks (issue 28), derived from an ingested archive's
``chips.parquet`` and ``dataset.json``: one row per chip (``ref`` = chip id), one per scene
(``ref`` = [collection/]item) and one for the whole archive."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS
from pyproj.exceptions import CRSError

from dove_model.data.manifest import DATASET_INFO_FILE
from dove_model.errors import DataFormatError
from dove_model.geo.outputs import CHIPS_FILE, read_chips

EXPECTED_FOOTPRINT_CRS = "EPSG:4326"  # what geopandas writes for the footprints' WGS84


def read_archive(dataset_dir: Path) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """The chips table and ``dataset.json`` (DataFormatError when either is missing)."""
    for name in (CHIPS_FILE, DATASET_INFO_FILE):
        if not (dataset_dir / name).is_file():
            raise DataFormatError(f"{dataset_dir}: no {name} (not an ingested archive)")
    info = json.loads((dataset_dir / DATASET_INFO_FILE).read_text(encoding="utf-8"))
    return read_chips(dataset_dir), info


def geometry_valid(geometry: Any) -> bool:
    """A non-empty, valid (OGC) polygon or multipolygon."""
    return (
        geometry is not None
        and not geometry.is_empty
        and geometry.geom_type in ("Polygon", "MultiPolygon")
        and bool(geometry.is_valid)
    )


def in_lonlat_range(geometry: Any) -> bool:
    if geometry is None or geometry.is_empty:
        return False
    west, south, east, north = geometry.bounds
    return -180.0 <= west <= east <= 180.0 and -90.0 <= south <= north <= 90.0


def crs_parseable(value: Any) -> bool:
    """A CRS pyproj reads (``EPSG:32632``, WKT); a null is allowed (``crs_present`` fails it)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return True
    if not str(value).strip():
        return False
    try:
        CRS.from_user_input(str(value))
    except CRSError:
        return False
    return True


def datetime_parseable(value: Any) -> bool:
    """An RFC 3339 instant with its offset (``2024-06-02T10:20:31Z``); a null is allowed
    (``datetime_present`` warns about it)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return True
    if isinstance(value, datetime):
        return value.tzinfo is not None
    text = str(value)
    if "T" not in text.upper():
        return False
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def _text_or_none(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def chip_facts(chips: gpd.GeoDataFrame) -> pd.DataFrame:
    """One row per chip: footprint validity and range, CRS, acquisition time, its id."""
    table_crs = chips.crs.to_string() if chips.crs is not None else None
    datetimes = chips["datetime"] if "datetime" in chips else pd.Series([None] * len(chips))
    crs = chips["crs"] if "crs" in chips else pd.Series([None] * len(chips))
    return pd.DataFrame(
        {
            "ref": chips["chip_id"].astype(str).to_numpy(),
            "chip_id": chips["chip_id"].astype(str).to_numpy(),
            "footprint_valid": [geometry_valid(g) for g in chips.geometry],
            "footprint_in_range": [in_lonlat_range(g) for g in chips.geometry],
            "footprint_crs": [table_crs] * len(chips),
            "crs": [_text_or_none(v) for v in crs],
            "crs_parseable": [crs_parseable(v) for v in crs],
            "datetime": [_text_or_none(v) for v in datetimes],
            "datetime_parseable": [datetime_parseable(v) for v in datetimes],
        }
    )


def scene_facts(chips: gpd.GeoDataFrame) -> pd.DataFrame:
    """One row per scene that gave chips: its chip count."""
    collection = chips.get("collection", pd.Series([None] * len(chips), index=chips.index))
    scene = [
        f"{c}/{i}" if isinstance(c, str) and c else str(i)
        for c, i in zip(collection, chips["item_id"], strict=True)
    ]
    counts = pd.Series(scene, dtype=object).value_counts(sort=False)
    return pd.DataFrame({"ref": counts.index.astype(str), "n_chips": counts.to_numpy()})


def archive_facts(chips: gpd.GeoDataFrame, info: dict[str, Any], name: str) -> pd.DataFrame:
    """One row: the scene and chip counts dataset.json records next to the table's."""
    return pd.DataFrame(
        {
            "ref": [name],
            "n_scenes": [int(info.get("n_scenes", 0))],
            "n_chips": [len(chips)],
            "n_images": [int(chips["image_id"].nunique()) if "image_id" in chips else 0],
            "recorded_n_chips": [int(info.get("n_chips", -1))],
        }
    )


def archive_tables(dataset_dir: Path) -> dict[str, pd.DataFrame]:
    chips, info = read_archive(dataset_dir)
    return {
        "chips": chip_facts(chips),
        "scenes": scene_facts(chips),
        "archive": archive_facts(chips, info, dataset_dir.name),
    }
