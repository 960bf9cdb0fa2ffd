"""STAC in: the test catalogs are valid STAC (pystac's offline core schemas), every form of a
static catalog lists the same scenes, band names come from eo:bands, one-asset-per-band items
read the same pixels as the multi-band file, and a STAC API that cannot be reached is a
one-line error."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pystac
import pytest
from pystac.validation import validate_dict

from dove_model.errors import ConfigError, DataFormatError
from dove_model.geo.ingest import ingest
from dove_model.geo.outputs import read_chips
from dove_model.geo.settings import IngestParams, SourceQuery
from dove_model.geo.sources import list_scenes
from dove_model.testing.geo_scenes import (
    rgb_scene,
    s2_scene,
    split_bands,
    write_catalog,
)


@pytest.fixture(scope="module")
def stac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stac")
    rgb = rgb_scene(root / "scenes" / "rgb.tif", 128)
    s2 = s2_scene(root / "scenes" / "s2.tif", 120)
    split = split_bands(s2_scene(root / "bands" / "s2split.tif", 120), root / "bands")
    write_catalog(root / "catalog", [rgb, s2])
    write_catalog(root / "split", [split], collection="split-bands")
    return root


def test_written_catalogs_are_valid_stac(stac: Path) -> None:
    for catalog_file in (stac / "catalog" / "catalog.json", stac / "split" / "catalog.json"):
        catalog = pystac.read_file(str(catalog_file))
        objects = [catalog, *catalog.get_children(), *catalog.get_items(recursive=True)]
        assert len(objects) >= 3
        for obj in objects:
            assert validate_dict(obj.to_dict(), extensions=[])  # core schemas, offline
    item = next(pystac.read_file(str(stac / "catalog" / "catalog.json")).get_items(recursive=True))
    assert item.properties["proj:code"] == "EPSG:32632"
    assert item.properties["proj:shape"] == [128, 128]
    assert item.assets["image"].extra_fields["eo:bands"][0]["common_name"] == "red"


def test_every_form_of_a_static_catalog_lists_the_same_scenes(stac: Path) -> None:
    root = stac / "catalog"
    collection = root / "test-scenes" / "collection.json"
    item_file = root / "test-scenes" / "s2" / "s2.json"
    query = SourceQuery()
    by_folder = list_scenes(str(root), query)
    assert [s.id for s in by_folder] == ["rgb", "s2"]
    assert by_folder == list_scenes(str(root / "catalog.json"), query)
    assert [s.id for s in list_scenes(str(collection), query)] == ["rgb", "s2"]
    (single,) = list_scenes(str(item_file), query)
    assert single.datetime == "2024-06-02T10:20:31Z" and single.collection == "test-scenes"
    assert single.assets[0].href == str((stac / "scenes" / "s2.tif").resolve())
    features = {"type": "FeatureCollection", "features": [json.loads(item_file.read_text())]}
    features["features"][0]["assets"]["image"]["href"] = "scenes/s2.tif"
    (stac / "items.json").write_text(json.dumps(features))
    (from_features,) = list_scenes(str(stac / "items.json"), query)
    assert from_features.assets[0].href == single.assets[0].href
    assert len(list_scenes(str(root), SourceQuery(max_items=1))) == 1


def test_a_collection_filter_with_no_match_is_an_error(stac: Path) -> None:
    with pytest.raises(DataFormatError, match="the catalog has no items"):
        list_scenes(str(stac / "catalog"), SourceQuery(collections=("other",)))


def test_eo_common_names_give_the_same_chips_as_band_descriptions(stac: Path) -> None:
    params = IngestParams(chip_size=60, workers=1)
    ingest(stac / "catalog", stac / "out-stac", params, progress=False)  # red,green,blue: eo
    by_stac = read_chips(stac / "out-stac")
    s2 = by_stac[by_stac["item_id"] == "s2"]
    assert s2["bands"].iloc[0].tolist() == ["B4", "B3", "B2"]
    assert set(by_stac["collection"]) == {"test-scenes"}
    assert s2["chip_id"].iloc[0] == "test-scenes/s2/r0000c0000"
    named = params.model_copy(update={"bands": ("B4", "B3", "B2")})
    folder = stac / "s2-only"
    folder.mkdir()
    (folder / "s2.tif").symlink_to(stac / "scenes" / "s2.tif")
    ingest(folder, stac / "out-folder", named, progress=False)
    by_file = read_chips(stac / "out-folder")
    assert by_file["image_id"].tolist() == s2["image_id"].tolist()  # the same bytes


def test_one_asset_per_band_reads_the_same_pixels(stac: Path) -> None:
    params = IngestParams(chip_size=60, bands=("red", "green", "blue"), workers=1)
    ingest(stac / "split", stac / "out-split", params, progress=False)
    split = read_chips(stac / "out-split")
    assert split["assets"].iloc[0].tolist() == ["red", "green", "blue"]
    assert len(split["hrefs"].iloc[0]) == 3
    whole = stac / "whole"
    whole.mkdir()
    (whole / "s2split.tif").symlink_to(stac / "bands" / "s2split.tif")
    named = params.model_copy(update={"bands": ("B4", "B3", "B2")})
    ingest(whole, stac / "out-whole", named, progress=False)
    assert read_chips(stac / "out-whole")["image_id"].tolist() == split["image_id"].tolist()
    default = params.model_copy(update={"bands": None})  # no RGB asset: RGB across assets
    ingest(stac / "split", stac / "out-split-default", default, progress=False)
    assert read_chips(stac / "out-split-default")["image_id"].tolist() == split["image_id"].tolist()


def test_an_unreachable_stac_api_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^http://127.0.0.1:9/stac: STAC source not reachable"):
        list_scenes("http://127.0.0.1:9/stac", SourceQuery())


@pytest.fixture()
def served(stac: Path) -> Iterator[str]:
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(stac / "catalog")
    )
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/catalog.json"
    server.shutdown()


def test_a_static_catalog_over_http_lists_through_pystac_client(served: str) -> None:
    scenes = list_scenes(served, SourceQuery())
    assert [s.id for s in scenes] == ["rgb", "s2"]
    assert scenes[0].assets[0].href.startswith(served.rsplit("/", 1)[0])
    with pytest.raises(ConfigError, match="a static catalog, not an API"):
        list_scenes(served, SourceQuery(bbox=(9.0, 47.0, 10.0, 48.0)))
