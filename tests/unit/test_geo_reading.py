"""Reading chips: band selection by name or index, resampling to another GSD, the documented
stretch of 16-bit bands (8-bit passes unchanged), nodata masks and the skip threshold."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image

from dove_model.data.manifest import read_manifest
from dove_model.errors import DataFormatError
from dove_model.geo.bands import FileInfo, normalise, resolve_bands
from dove_model.geo.ingest import ingest
from dove_model.geo.outputs import read_chips
from dove_model.geo.plan import gdal_env
from dove_model.geo.settings import IngestParams
from dove_model.geo.sources import AssetRef, BandMeta, Scene
from dove_model.geo.stretch import BandStretch, to_uint8
from dove_model.testing.geo_scenes import (
    UTM32N,
    north_up,
    rgb_scene,
    s2_scene,
    utm_origin,
    write_cog,
)


def _pixels(out: Path, chip: pd.Series) -> np.ndarray:
    return np.asarray(Image.open(out / chip["image_path"]))


def _one(params: IngestParams, source: Path, out: Path) -> pd.DataFrame:
    ingest(source, out, params, progress=False)
    return read_chips(out)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reading")
    rgb_scene(root / "rgb" / "rgb.tif", 128, gsd=1.0)
    s2_scene(root / "s2" / "s2.tif", 200, nodata_border=40)
    s2_scene(root / "s2b" / "s2.tif", 100, nodata_border=10)  # every chip has nodata
    return root


def test_names_normalise() -> None:
    assert normalise("B04") == normalise("b4") == "b4"
    assert normalise("B8A") == "b8a" and normalise("Grey") == "gray" and normalise("red") == "red"


def _scene() -> Scene:
    bands = (BandMeta("B04", "red"), BandMeta("B03", "green"), BandMeta("B02", "blue"))
    return Scene(
        "item",
        "coll",
        None,
        (
            AssetRef("visual", "/v.tif", bands),
            AssetRef("nir", "/n.tif", (BandMeta("B08", "nir"),)),
            AssetRef("B11", "/s.tif"),
        ),
        "cat.json: item item",
    )


def _info(asset: AssetRef) -> FileInfo:
    count = 3 if asset.key == "visual" else 1
    return FileInfo(count, ("uint8",) * count, (None,) * count, ("undefined",) * count)


def test_band_tokens_resolve_against_stac_names_asset_keys_and_indices() -> None:
    scene = _scene()
    default = resolve_bands(scene, None, None, _info)
    assert [(b.asset, b.index) for b in default] == [("visual", 1), ("visual", 2), ("visual", 3)]
    picked = resolve_bands(scene, ("nir", "B4", "b11"), None, _info)
    assert [(b.asset, b.index, b.label) for b in picked] == [
        ("nir", 1, "B08"),
        ("visual", 1, "B04"),
        ("B11", 1, "B11"),
    ]
    assert [b.index for b in resolve_bands(scene, ("3", "2", "1"), None, _info)] == [3, 2, 1]
    with pytest.raises(DataFormatError, match=r"cat.json: item item: no band 'B9'"):
        resolve_bands(scene, ("B9", "B3", "B2"), None, _info)
    with pytest.raises(DataFormatError, match="no band 4 in asset 'visual'"):
        resolve_bands(scene, ("4",), None, _info)
    with pytest.raises(DataFormatError, match="no raster asset 'tci'"):
        resolve_bands(scene, None, "tci", _info)


def test_band_names_from_descriptions_pick_the_right_planes(root: Path) -> None:
    out = root / "by-name"
    params = IngestParams(chip_size=100, bands=("B4", "b03", "1"), workers=1)
    chips = _one(params, root / "s2", out)
    assert chips["bands"].iloc[0].tolist() == ["B4", "B3", "B2"]
    chip = chips.iloc[-1]  # bottom right: no nodata
    with rasterio.open(root / "s2" / "s2.tif") as src:
        window = rasterio.windows.Window(chip.scene_col_off, chip.scene_row_off, 100, 100)
        raw = src.read([3, 2, 1], window=window).astype(np.float64)
    low, high = np.array(chip.stretch_low), np.array(chip.stretch_high)
    expected = np.clip((raw - low[:, None, None]) / (high - low)[:, None, None] * 255, 0, 255)
    got = _pixels(out, chip).transpose(2, 0, 1).astype(np.float64)
    assert np.abs(got - np.rint(expected)).max() <= 1


def test_stretch_is_the_scene_percentiles_of_valid_pixels(root: Path) -> None:
    chips = _one(IngestParams(chip_size=100, bands=("B8",)), root / "s2", root / "nir")
    with rasterio.open(root / "s2" / "s2.tif") as src:
        band = src.read(4)
    valid = band[band != 0].astype(np.float64)  # nodata 0
    low, high = np.percentile(valid, (2, 98))
    assert chips["stretch_low"].iloc[0].tolist() == pytest.approx([low])
    assert chips["stretch_high"].iloc[0].tolist() == pytest.approx([high])
    grey = _pixels(root / "nir", chips.iloc[-1])
    assert grey.ndim == 2  # one band: a grey image
    assert grey.min() == 0 and grey.max() == 255  # clipped at both ends


def test_eight_bit_passes_unchanged_at_the_native_gsd(root: Path) -> None:
    chips = _one(IngestParams(chip_size=64, workers=1), root / "rgb", root / "rgb-out")
    with rasterio.open(root / "rgb" / "rgb.tif") as src:
        source = src.read()
    assert len(chips) == 4
    for _, chip in chips.iterrows():
        c, r = int(chip.scene_col_off), int(chip.scene_row_off)
        expected = source[:, r : r + 64, c : c + 64].transpose(1, 2, 0)
        np.testing.assert_array_equal(_pixels(root / "rgb-out", chip), expected)
    assert np.isnan(np.asarray(chips["stretch_low"].iloc[0], dtype=float)).all()


def test_coarser_gsd_averages_and_finer_interpolates(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 250, size=(3, 128, 128), dtype=np.uint8)
    left, top = utm_origin(9.0, 48.0)
    write_cog(tmp_path / "in" / "noise.tif", data, UTM32N, north_up(left, top, 1.0))
    coarse = _one(IngestParams(chip_size=64, gsd=2.0), tmp_path / "in", tmp_path / "coarse")
    assert len(coarse) == 1 and coarse["scene_width"].iloc[0] == 128.0
    means = data.reshape(3, 64, 2, 64, 2).astype(np.float64).mean(axis=(2, 4))
    got = _pixels(tmp_path / "coarse", coarse.iloc[0]).transpose(2, 0, 1)
    assert np.abs(got - means).max() <= 1.0  # GDAL's average, rounded
    fine = _one(IngestParams(chip_size=64, gsd=0.5), tmp_path / "in", tmp_path / "fine")
    assert len(fine) == 16 and set(fine["gsd"]) == {0.5}
    first = _pixels(tmp_path / "fine", fine.iloc[0]).astype(np.int16)
    assert first.shape == (64, 64, 3)
    assert np.abs(first[::2, ::2] - data[:, :32, :32].transpose(1, 2, 0)).mean() < 40  # bilinear


def test_nodata_chips_are_skipped_above_the_limit_and_masked_below(root: Path) -> None:
    params = IngestParams(chip_size=100, bands=("B4", "B3", "B2"), max_nodata=0.5)
    kept = _one(params, root / "s2", root / "nodata-kept")
    assert len(kept) == 4  # 200 px: 2 x 2 chips; the left ones 40 % nodata
    left = kept[kept["col"] == 0]
    assert left["nodata_fraction"].tolist() == pytest.approx([0.4, 0.4])
    pixels = _pixels(root / "nodata-kept", left.iloc[0])
    assert (pixels[:, :40] == 0).all() and (pixels[:, 40:].max(axis=2) > 0).mean() > 0.99
    strict = params.model_copy(update={"max_nodata": 0.3})
    skipped = _one(strict, root / "s2", root / "nodata-skipped")
    assert sorted(skipped["col"]) == [1, 1]
    nothing = _one(params.model_copy(update={"max_nodata": 0.0}), root / "s2b", root / "empty")
    assert nothing.empty and read_manifest(root / "empty").empty


def test_to_uint8_zeroes_invalid_pixels() -> None:
    band = np.array([[100, 200], [300, 400]], dtype=np.uint16)
    valid = np.array([[True, True], [True, False]])
    out = to_uint8([band], valid, [BandStretch(100.0, 300.0)])
    assert out[..., 0].tolist() == [[0, 128], [255, 0]]


def test_plain_geotiff_time_comes_from_its_tiff_tag(tmp_path: Path) -> None:
    when = datetime(2023, 3, 4, 5, 6, 7, tzinfo=UTC)
    rgb_scene(tmp_path / "in" / "a.tif", 64, when=when)
    chips = _one(IngestParams(chip_size=64), tmp_path / "in", tmp_path / "out")
    assert chips["datetime"].tolist() == ["2023-03-04T05:06:07Z"]
    assert chips["item_id"].tolist() == ["a"] and chips["assets"].iloc[0].tolist() == ["image"]


def test_a_workers_gdal_block_cache_is_the_configured_size() -> None:
    # rasterio hands GDAL_CACHEMAX on in bytes: 64 would be a 64-byte cache (reads 1000x slower)
    with gdal_env(IngestParams(gdal_cache_mb=64)):
        assert int(rasterio.env.get_gdal_config("GDAL_CACHEMAX")) == 64 * 2**20


def test_a_scene_smaller_than_a_chip_is_one_padded_chip(tmp_path: Path) -> None:
    rgb_scene(tmp_path / "in" / "small.tif", 100)  # no nodata value: validity is the extent
    chips = _one(IngestParams(chip_size=128), tmp_path / "in", tmp_path / "out")
    assert len(chips) == 1
    assert chips["nodata_fraction"].iloc[0] == pytest.approx(1 - 100 * 100 / 128**2)
    pixels = _pixels(tmp_path / "out", chips.iloc[0])
    with rasterio.open(tmp_path / "in" / "small.tif") as src:
        np.testing.assert_array_equal(pixels[:100, :100], src.read().transpose(1, 2, 0))
    assert not pixels[100:].any() and not pixels[:, 100:].any()


def test_a_scene_in_degrees_keeps_its_grid_and_reports_metres(tmp_path: Path) -> None:
    data = np.full((3, 64, 64), 120, dtype=np.uint8)
    write_cog(tmp_path / "in" / "wgs84.tif", data, "EPSG:4326", north_up(9.0, 48.0, 0.0001))
    chips = _one(IngestParams(chip_size=32), tmp_path / "in", tmp_path / "out")
    assert len(chips) == 4 and set(chips["crs"]) == {"EPSG:4326"}
    # 0.0001 deg at 48 N: 7.45 m east-west, 11.13 m north-south; the gsd is their mean
    assert chips["gsd"].iloc[0] == pytest.approx(9.29, abs=0.01)
    west, _, east, north = chips.geometry.iloc[0].bounds
    assert (west, north) == pytest.approx((9.0, 48.0)) and east - west == pytest.approx(0.0032)
