"""The chip grid and the footprints: chips cover the scene as documented, and every chip's
footprint matches GDAL's own georeferencing of the scene to within half a pixel (corners and
densified edges), across a UTM zone edge too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.warp import transform as gdal_transform
from shapely.geometry import Polygon

from dove_model.geo.footprints import crs_text, footprint, gsd_metres
from dove_model.geo.ingest import ingest
from dove_model.geo.outputs import read_chips
from dove_model.geo.settings import IngestParams
from dove_model.geo.tiling import (
    TargetGrid,
    axis_starts,
    chip_count,
    chip_windows,
    target_grid,
    task_ranges,
)
from dove_model.testing.geo_scenes import UTM32N, s2_scene, zone_edge_scene


@pytest.mark.parametrize(
    ("length", "size", "stride", "expected"),
    [
        (512, 256, 256, [0, 256]),
        (600, 256, 256, [0, 256, 344]),  # the last chip moved back onto the edge
        (600, 256, 192, [0, 192, 344]),
        (256, 256, 256, [0]),
        (100, 256, 256, [0]),  # smaller than a chip: one padded chip
    ],
)
def test_axis_starts(length: int, size: int, stride: int, expected: list[int]) -> None:
    assert axis_starts(length, size, stride) == expected


def test_grid_holds_whole_target_pixels_and_tasks_hold_whole_rows() -> None:
    grid = target_grid((500_000.0, 4_999_000.0, 503_000.0, 5_000_000.0), UTM32N, 7.0)
    assert (grid.width, grid.height) == (428, 142)  # floor(3000 / 7), floor(1000 / 7)
    assert grid.affine @ (0, 0) == (500_000.0, 5_000_000.0)
    windows = chip_windows(grid, 64, 16)
    assert {w.size for w in windows} == {64}
    assert max(w.x for w in windows) + 64 == grid.width
    assert max(w.y for w in windows) + 64 == grid.height
    rows, per_row = chip_count(grid, 64, 16)
    assert rows * per_row == len(windows)
    ranges = task_ranges(rows, per_row, 2 * per_row + 1)
    assert all((b - a) % per_row == 0 or b == len(windows) for a, b in ranges)
    assert ranges[0] == (0, 2 * per_row) and ranges[-1][1] == len(windows)
    assert chip_windows(grid, 64, 16, *ranges[1]) == windows[slice(*ranges[1])]


def _gdal_lonlat(src: rasterio.io.DatasetReader, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    xs, ys = src.transform @ (cols, rows)
    lon, lat = gdal_transform(src.crs, "EPSG:4326", list(xs), list(ys))
    return np.column_stack([lon, lat])


def _check_footprints(scene: Path, out: Path, half_pixel_m: float) -> None:
    chips = read_chips(out)
    with rasterio.open(scene) as src:
        for chip in chips.itertuples():
            ring = np.asarray(chip.geometry.exterior.coords)[:-1]
            c0, r0 = chip.scene_col_off, chip.scene_row_off
            c1, r1 = c0 + chip.scene_width, r0 + chip.scene_height
            # ring order: bottom-left, along the bottom, right, top, left (8 points an edge)
            t = np.linspace(0, 1, 8, endpoint=False)
            cols = np.concatenate(
                [c0 + (c1 - c0) * t, np.full(8, c1), c1 - (c1 - c0) * t, np.full(8, c0)]
            )
            rows = np.concatenate(
                [np.full(8, r1), r1 - (r1 - r0) * t, np.full(8, r0), r0 + (r1 - r0) * t]
            )
            expected = _gdal_lonlat(src, cols, rows)
            lat = np.radians(expected[:, 1])
            metres = np.column_stack(
                [
                    (ring[:, 0] - expected[:, 0]) * 111_320 * np.cos(lat),
                    (ring[:, 1] - expected[:, 1]) * 110_574,
                ]
            )
            assert np.abs(metres).max() < half_pixel_m, chip.chip_id


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    zone_edge_scene(root / "in" / "edge.tif", size=320)
    s2_scene(root / "s2" / "s2.tif", size=200)
    return root


def test_footprints_match_gdal_across_a_utm_zone_edge(scenes: Path) -> None:
    out = scenes / "edge-out"
    ingest(scenes / "in", out, IngestParams(chip_size=64, overlap=16, workers=1), progress=False)
    _check_footprints(scenes / "in" / "edge.tif", out, half_pixel_m=5.0)
    chips = read_chips(out)
    centres = np.array([g.centroid.x for g in chips.geometry])
    assert (centres < 12.0).any() and (centres > 12.0).any()  # both sides of the zone edge
    assert all(isinstance(g, Polygon) and g.exterior.is_ccw for g in chips.geometry)
    assert set(chips["crs"]) == {UTM32N}


def test_footprints_match_gdal_at_another_gsd(scenes: Path) -> None:
    out = scenes / "s2-out"
    params = IngestParams(chip_size=32, gsd=25.0, bands=("B4", "B3", "B2"), workers=1)
    ingest(scenes / "s2", out, params, progress=False)
    chips = read_chips(out)
    assert set(chips["gsd"]) == {25.0} and set(chips["native_gsd"]) == {10.0}
    assert set(chips["scene_width"]) == {80.0}  # 32 chip pixels of 25 m = 80 scene pixels
    _check_footprints(scenes / "s2" / "s2.tif", out, half_pixel_m=12.5)


def test_footprint_edges_are_densified_curves() -> None:
    # a 100 km square in UTM: its edges bow in lon/lat, a straight 4-corner polygon would not
    poly = footprint((300_000.0, 5_200_000.0, 400_000.0, 5_300_000.0), UTM32N)
    assert len(poly.exterior.coords) == 33
    assert poly.is_valid and poly.exterior.is_ccw
    lon, lat = poly.exterior.coords.xy
    assert 6.0 < min(lon) < max(lon) < 9.0 and 46.0 < min(lat) < max(lat) < 48.0  # x = lon


def test_crs_text_and_gsd_in_metres() -> None:
    assert crs_text(CRS.from_epsg(32632)) == "EPSG:32632"
    assert crs_text(CRS.from_proj4("+proj=utm +zone=32 +ellps=intl +units=m")).startswith("PROJCS")
    assert gsd_metres(CRS.from_epsg(32632), 10.0, (500_000.0, 5_000_000.0)) == 10.0
    feet = CRS.from_epsg(2263)  # NAD83 / New York Long Island (US survey feet)
    assert gsd_metres(feet, 10.0, (0.0, 0.0)) == pytest.approx(3.048, abs=1e-3)
    degrees = gsd_metres(CRS.from_epsg(4326), 0.0001, (9.0, 0.0))
    assert degrees == pytest.approx(11.1, abs=0.05)


def test_grid_is_the_scene_grid_at_the_native_gsd(scenes: Path) -> None:
    with rasterio.open(scenes / "s2" / "s2.tif") as src:
        grid = target_grid(tuple(src.bounds), UTM32N, 10.0)
        assert isinstance(grid, TargetGrid)
        assert (grid.width, grid.height) == (src.width, src.height)
        assert grid.affine.almost_equals(src.transform)
