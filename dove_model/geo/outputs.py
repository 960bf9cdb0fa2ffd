"""The ingest's dataset: the canonical layout (``images/`` + ``manifest.parquet`` +
``dataset.json``, docs/contracts.md section 1) plus ``chips.parquet``, the chips' GeoParquet
table.

``manifest.parquet`` has one row per distinct chip image (image_id = sha256 of its bytes), with
no caption (null), so ``dove index build -s DIR`` indexes the chips as images; captions can be
added later as more rows of the same image. ``chips.parquet`` has one row per chip (a chip
whose bytes repeat another's shares its image): geometry = footprint (EPSG:4326), native CRS,
GSD, time, source item and assets, window in the scene.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from dove_model.atomic import atomic_path, write_text
from dove_model.data.manifest import DATASET_INFO_FILE, empty_manifest, write_manifest

CHIPS_FILE = "chips.parquet"
WGS84 = "EPSG:4326"
FOOTPRINT_WKB = "footprint_wkb"


def chips_table(frames: Sequence[pd.DataFrame]) -> gpd.GeoDataFrame:
    """Scene records joined into a GeoDataFrame (geometry = footprint, EPSG:4326)."""
    kept = [f for f in frames if not f.empty]
    if not kept:
        return gpd.GeoDataFrame({"chip_id": pd.Series(dtype="string")}, geometry=[], crs=WGS84)
    chips = pd.concat(kept, ignore_index=True)
    geometry = gpd.GeoSeries.from_wkb(chips[FOOTPRINT_WKB], crs=WGS84)
    return gpd.GeoDataFrame(chips.drop(columns=[FOOTPRINT_WKB]), geometry=geometry, crs=WGS84)


def manifest_of(chips: pd.DataFrame, split: str) -> pd.DataFrame:
    """One manifest row per distinct chip image, without a caption."""
    if chips.empty:
        return empty_manifest()
    images = chips.drop_duplicates("image_id")
    count = len(images)
    return pd.DataFrame(
        {
            "image_id": images["image_id"].to_numpy(),
            "image_path": images["image_path"].to_numpy(),
            "caption_id": range(count),
            "caption": pd.array([None] * count, dtype="string"),
            "split": [split] * count,
            "sha256": images["sha256"].to_numpy(),
            "width": images["width"].to_numpy(),
            "height": images["height"].to_numpy(),
            "label": pd.array([None] * count, dtype="string"),
            "source_line": pd.array([None] * count, dtype="Int64"),
        }
    )


def dataset_info(
    chips: pd.DataFrame, manifest: pd.DataFrame, split: str, n_scenes: int, source: str, name: str
) -> dict[str, Any]:
    """``dataset.json``: the importer's counts, plus the scenes and chips."""
    return {
        "name": name,
        "format": "archive",
        "source": source,
        "n_images": len(manifest),
        "n_captions": 0,
        "n_missing_images": 0,
        "splits": {split: {"images": len(manifest), "captions": 0}} if len(manifest) else {},
        "labels": [],
        "duplicate_image_paths": [],
        "n_scenes": n_scenes,
        "n_chips": len(chips),
    }


def write_outputs(
    out_dir: Path, frames: Sequence[pd.DataFrame], split: str, source: str
) -> gpd.GeoDataFrame:
    """Write ``chips.parquet``, ``manifest.parquet`` and ``dataset.json`` (each atomically)
    from the records of each scene (``frames``, one a scene)."""
    chips = chips_table(frames)
    with atomic_path(out_dir / CHIPS_FILE, suffix=".parquet") as tmp:
        chips.to_parquet(tmp, index=False)
    manifest = manifest_of(chips, split)
    write_manifest(manifest, out_dir)
    info = dataset_info(chips, manifest, split, len(frames), source, out_dir.name)
    write_text(out_dir / DATASET_INFO_FILE, json.dumps(info, indent=2) + "\n")
    return chips


def read_chips(out_dir: Path | str) -> gpd.GeoDataFrame:
    return gpd.read_parquet(Path(out_dir) / CHIPS_FILE)
