"""Filtered, georeferenced search under a real `bentoml serve` (issue 28): two scenes cut by
`dove archive ingest`, indexed by `dove deploy`'s index step with a tiny model, then searched
with STAC bbox / intersects / datetime filters in both directions, GeoJSON output, and every
bad filter a JSON 400."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import httpx
import pytest
from shapely.geometry import box, shape

from dove_model.config import Params
from dove_model.families.dove.inference import DoveEncoder
from dove_model.geo.outputs import read_chips
from dove_model.index.incremental import update_index_with
from dove_model.serving.launch import ServiceProcess
from dove_model.testing.bad_input import BAD_GEO_QUERIES, error_text, png_bytes
from dove_model.testing.deployment import DemoDeployment, serving, wait_for_info
from dove_model.testing.geo_deployment import (
    JULY,
    NEAR_A,
    deploy_two_scenes,
    ingest_cli,
)
from dove_model.testing.geo_scenes import rgb_scene

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> DemoDeployment:
    return deploy_two_scenes(tmp_path_factory.mktemp("geo-service"))


@pytest.fixture(scope="module")
def chips(deployment: DemoDeployment) -> gpd.GeoDataFrame:
    return read_chips(deployment.dataset_dir)


@pytest.fixture(scope="module")
def service(
    deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    with serving(deployment, tmp_path_factory.mktemp("logs") / "serve.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=60) as http:
        yield http


def search(client: httpx.Client, **payload: object) -> dict:
    response = client.post("/search_images", json={"query": "a blue lake", **payload})
    assert response.status_code == 200, response.text
    return response.json()


def item_of(chips: gpd.GeoDataFrame, image_id: str) -> set[str]:
    return {Path(str(i)).name for i in chips.loc[chips["image_id"] == image_id, "item_id"]}


def test_bbox_keeps_only_the_scene_it_covers(client: httpx.Client, chips: gpd.GeoDataFrame) -> None:
    everything = search(client, k=100)["results"]
    near_a = search(client, k=100, bbox=NEAR_A)["results"]
    expected = {i for i in chips["image_id"] if shape(box(*NEAR_A)).intersects(
        chips.loc[chips["image_id"] == i].geometry.union_all())}  # fmt: skip
    assert {h["image_id"] for h in near_a} == expected and 0 < len(expected) < len(everything)
    assert all(item_of(chips, h["image_id"]) == {"a"} for h in near_a)
    top = search(client, k=3, bbox=NEAR_A)["results"]  # the filtered top-3, never short
    assert [h["image_id"] for h in top] == [h["image_id"] for h in near_a[:3]]


def test_datetime_and_intersects_filters(client: httpx.Client, chips: gpd.GeoDataFrame) -> None:
    july = search(client, k=100, datetime="2024-06-01T00:00:00Z/..")["results"]
    assert july and all(item_of(chips, h["image_id"]) == {"b"} for h in july)
    may = search(client, k=100, datetime="../2024-05-01T10:30:00Z")["results"]
    assert may and all(item_of(chips, h["image_id"]) == {"a"} for h in may)
    polygon = box(*NEAR_A).__geo_interface__
    both = search(client, k=100, intersects=polygon, datetime="2024-05-01T10:30:00Z")["results"]
    assert {h["image_id"] for h in both} == {
        h["image_id"] for h in search(client, k=100, bbox=NEAR_A)["results"]
    }


def test_a_filter_matching_nothing_is_an_empty_200(client: httpx.Client) -> None:
    assert search(client, k=10, bbox=[-60, -30, -50, -20])["results"] == []
    assert search(client, k=10, datetime="2030-01-01T00:00:00Z/..")["results"] == []
    body = search(client, k=10, bbox=[170, -10, -170, 10], format="geojson")  # antimeridian
    assert body["type"] == "FeatureCollection" and body["features"] == []


def test_geojson_results_are_an_rfc7946_feature_collection(
    client: httpx.Client, chips: gpd.GeoDataFrame
) -> None:
    response = client.post(
        "/search_images", json={"query": "a blue lake", "k": 5, "format": "geojson"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == 5
    ranks = [f["properties"]["rank"] for f in body["features"]]
    scores = [f["properties"]["score"] for f in body["features"]]
    assert ranks == [1, 2, 3, 4, 5] and scores == sorted(scores, reverse=True)
    for feature in body["features"]:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
        footprint = shape(feature["geometry"])
        lon, lat = footprint.centroid.x, footprint.centroid.y  # lon/lat order
        assert 8.9 < lon < 11.2 and 46.9 < lat < 48.1
        assert footprint.exterior.is_ccw  # RFC 7946 right-hand rule
        mine = chips.loc[chips["image_id"] == feature["id"]].geometry.union_all()
        assert footprint.equals_exact(mine, 1e-9) or footprint.equals(mine)
        props = feature["properties"]
        assert props["datetime"] in ("2024-05-01T10:30:00Z", "2024-07-01T10:30:00Z")
        assert props["crs"] == "EPSG:32632" and props["gsd"] == pytest.approx(1.0)
        link = feature["links"][0]
        assert link["rel"] == "thumbnail" and link["href"] == props["thumbnail_url"]
        thumb = client.get(link["href"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_stac_results_are_an_item_collection(client: httpx.Client) -> None:
    import pystac

    body = search(client, k=4, bbox=NEAR_A, format="stac")
    collection = pystac.ItemCollection.from_dict(body)
    assert len(collection.items) == 4
    for rank, item in enumerate(collection.items, start=1):
        assert item.datetime is not None and item.datetime.month == 5
        assert item.properties["dove:rank"] == rank and item.properties["gsd"] == 1.0
        assert item.assets["thumbnail"].roles == ["thumbnail"]
        west, south, east, north = item.bbox
        assert west < east and south < north and 8.9 < west < 9.1
        assert shape(item.geometry).intersects(box(*NEAR_A))


def test_search_texts_takes_the_filters_as_form_fields(client: httpx.Client) -> None:
    files = {"image": ("a.png", png_bytes(), "image/png")}
    # the chips have no captions: no caption is allowed either way, and that is no error
    for data in ({"bbox": ",".join(map(str, NEAR_A))}, {"datetime": "2024-06-01T00:00:00Z/.."}):
        response = client.post("/search_texts", files=files, data={"k": "3", **data})
        assert response.status_code == 200, response.text
        assert response.json()["results"] == []
    bad = client.post("/search_texts", files=files, data={"bbox": "1,2,x,4"})
    assert "bbox" in error_text(bad, 400)
    bad = client.post("/search_texts", files=files, data={"intersects": "{nope"})
    assert "intersects: not valid JSON" in error_text(bad, 400)


@pytest.mark.parametrize(("payload", "message"), BAD_GEO_QUERIES)
def test_bad_filters_are_json_400(client: httpx.Client, payload: dict, message: str) -> None:
    assert message in error_text(client.post("/search_images", json=payload), 400)


def test_the_service_is_still_ready_after_the_bad_filters(
    client: httpx.Client, deployment: DemoDeployment
) -> None:
    assert client.get("/readyz").status_code == 200
    info = client.post("/info", json={}).json()
    assert info["n_images"] == len(set(read_chips(deployment.dataset_dir)["image_id"]))


def test_a_live_swap_to_a_grown_archive_serves_its_new_footprints(
    client: httpx.Client, service: ServiceProcess, deployment: DemoDeployment
) -> None:
    """Runs last (it grows the served archive): a third scene ingested into the same dataset,
    `dove index add` writes a new index version, the running service swaps to it and the new
    scene's footprints are searchable, with the old ones kept."""
    scenes = deployment.dataset_dir.parent / "scenes"
    rgb_scene(scenes / "c.tif", 128, lon=7.0, lat=46.5, seed=3, when=JULY)
    near_c = [6.99, 46.49, 7.02, 46.51]
    assert search(client, k=10, bbox=near_c)["results"] == []
    before = client.post("/info", json={}).json()
    ingest_cli(scenes, deployment.dataset_dir)
    encoder = DoveEncoder.from_dir(deployment.model_dir)
    report = update_index_with(
        encoder, deployment.index_dir, deployment.dataset_dir, Params(), progress=False
    )
    assert report.added > 0 and report.removed == 0
    wait_for_info(service.url, lambda i: i["index_version"] != before["index_version"], 30)
    found = search(client, k=100, bbox=near_c, format="geojson")["features"]
    chips = read_chips(deployment.dataset_dir)
    assert found and all(item_of(chips, f["id"]) == {"c"} for f in found)
    assert all(shape(f["geometry"]).intersects(box(*near_c)) for f in found)
    assert search(client, k=100, bbox=NEAR_A)["results"]  # scene A still there
