"""One worker task: read, check, stretch, encode and store a run of chips of one scene, then
record them (``dove_model.geo.journal``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rasterio.enums import Resampling

from dove_model.geo.footprints import chip_footprint
from dove_model.geo.journal import part_file, write_records
from dove_model.geo.plan import ScenePlan, gdal_env
from dove_model.geo.reading import SceneReader
from dove_model.geo.settings import IngestParams
from dove_model.geo.store import StoredChip, encode, store
from dove_model.geo.stretch import to_uint8
from dove_model.geo.tiling import ChipWindow, chip_windows


@dataclass(frozen=True)
class ChipTask:
    plan: ScenePlan
    start: int  # chip range [start, stop) of the scene's row-major chips
    stop: int
    out_dir: Path
    params: IngestParams


@dataclass(frozen=True)
class TaskResult:
    scene_key: str
    start: int
    stop: int
    written: int  # chip files written now
    existing: int  # chips whose file was already there (a resumed or repeated chip)
    skipped: int  # chips over the nodata limit


def chip_id(plan: ScenePlan, window: ChipWindow) -> str:
    return f"{plan.scene.label}/r{window.row:04d}c{window.col:04d}"


def chip_record(
    plan: ScenePlan, window: ChipWindow, reader: SceneReader, stored: StoredChip, nodata: float
) -> dict[str, Any]:
    """One row of ``chips.parquet`` (the footprint as WKB until the table is written)."""
    scene_window = reader.scene_window(window)
    return {
        "chip_id": chip_id(plan, window),
        "image_id": stored.sha256,
        "image_path": stored.path,
        "sha256": stored.sha256,
        "item_id": plan.scene.id,
        "collection": plan.scene.collection,
        "assets": list(dict.fromkeys(b.asset for b in plan.bands)),
        "hrefs": list(dict.fromkeys(b.href for b in plan.bands)),
        "bands": [b.label for b in plan.bands],
        "datetime": plan.datetime,
        "crs": plan.crs,
        "gsd": plan.gsd_m,
        "native_gsd": plan.native_gsd_m,
        "row": window.row,
        "col": window.col,
        "scene_col_off": float(scene_window.col_off),
        "scene_row_off": float(scene_window.row_off),
        "scene_width": float(scene_window.width),
        "scene_height": float(scene_window.height),
        "width": window.size,
        "height": window.size,
        "nodata_fraction": nodata,
        "stretch_low": [s.low for s in plan.stretch],
        "stretch_high": [s.high for s in plan.stretch],
        "footprint_wkb": chip_footprint(plan.grid, window).wkb,
    }


def run_task(task: ChipTask) -> TaskResult:
    """Chips ``task.start`` to ``task.stop`` of the scene: each read through its own window."""
    plan, params = task.plan, task.params
    windows = chip_windows(plan.grid, params.chip_size, params.overlap, task.start, task.stop)
    records: list[dict[str, Any]] = []
    written = existing = skipped = 0
    resampling = Resampling[plan.resampling]
    with gdal_env(params), SceneReader(plan.bands, plan.grid, resampling) as reader:
        for window in windows:
            channels, valid = reader.read(window)
            nodata = 1.0 - float(valid.mean())
            if nodata > params.max_nodata:
                skipped += 1
                continue
            pixels = to_uint8(channels, valid, plan.stretch)
            stored = store(
                task.out_dir,
                encode(pixels, params.image_format, params.jpeg_quality),
                params.image_format,
            )
            written += stored.written
            existing += not stored.written
            records.append(chip_record(plan, window, reader, stored, nodata))
    write_records(part_file(task.out_dir, plan.scene.key, task.start, task.stop), records)
    return TaskResult(plan.scene.key, task.start, task.stop, written, existing, skipped)
