"""The search page's map in a real headless Chromium (issue 28), on a real `bentoml serve` of
two ingested scenes: result footprints and chip thumbnails drawn without a basemap (the
default, offline: any request off the service fails the test), a box drawn with the mouse
filters the search (the request carries it as `bbox`, the results are exactly the images
whose footprints it touches), and a configured basemap's tiles are requested from its URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
from playwright.sync_api import Page, Route, expect
from shapely.geometry import box, shape

from dove_model.geo.outputs import read_chips
from dove_model.serving.launch import ServiceProcess
from dove_model.serving.page_assets import LEAFLET, is_vendored
from dove_model.testing.bad_input import png_bytes
from dove_model.testing.browser import CHROMIUM, keep_screenshot, service_page
from dove_model.testing.deployment import DemoDeployment, serving
from dove_model.testing.geo_deployment import deploy_two_scenes

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "reports" / "screenshots"
TILES = "https://tiles.example.test/"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> DemoDeployment:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not installed (run `make system-deps`)")
    assert is_vendored(LEAFLET, REPO / "serving" / "static" / "vendor"), (
        "Leaflet is not vendored: run `make setup`"
    )
    return deploy_two_scenes(tmp_path_factory.mktemp("geo-page"))


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
def page(service: ServiceProcess) -> Iterator[Page]:
    with service_page(service.url, service.page_url) as tab:
        yield tab


def search(page: Page, query: str, k: int) -> dict:
    """Submit the text form; the search response's JSON."""
    page.fill("#query", query)
    page.fill("#k", str(k))
    with page.expect_response(lambda r: r.url.endswith("/search_images")) as answer:
        page.click("#text-form button")
    return answer.value.json()


def thumbnails_loaded(page: Page, selector: str) -> None:
    page.wait_for_function(
        f"[...document.querySelectorAll({selector!r})]"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=15_000,
    )


def screen_point(page: Page, lon: float, lat: float) -> tuple[float, float]:
    """Where the map draws (lon, lat), in page pixels."""
    x, y = page.evaluate(
        "([lat, lon]) => { const p = doveMap.map.latLngToContainerPoint([lat, lon]);"
        " return [p.x, p.y]; }",
        [lat, lon],
    )
    frame = page.locator("#map").bounding_box()
    assert frame is not None
    return frame["x"] + x, frame["y"] + y


def images_of(chips: gpd.GeoDataFrame, item: str) -> set[str]:
    return set(chips.loc[chips["item_id"].map(lambda it: Path(it).name) == item, "image_id"])


def test_footprints_and_thumbnails_are_drawn_without_a_basemap(
    page: Page, chips: gpd.GeoDataFrame
) -> None:
    expect(page.locator("#map-panel")).to_be_visible(timeout=15_000)
    body = search(page, "a blue lake surrounded by land", 12)
    assert body["type"] == "FeatureCollection"  # the page asked for GeoJSON
    expect(page.locator("[data-testid=result]")).to_have_count(12, timeout=15_000)
    expect(page.locator("path.footprint")).to_have_count(12)
    expect(page.locator("img.footprint-thumb")).to_have_count(12)
    thumbnails_loaded(page, "img.footprint-thumb")
    expect(page.locator(".leaflet-control-attribution")).to_contain_text("no basemap")
    expect(page.locator("img.leaflet-tile")).to_have_count(0)
    shown = {f["id"] for f in body["features"]}
    assert shown <= set(chips["image_id"].astype(str))


def test_drawing_a_box_filters_the_search(
    page: Page, chips: gpd.GeoDataFrame, tmp_path: Path
) -> None:
    """Zoomed on scene A, a box over its north-west part: the search is sent again with that
    box, and the results are the images whose footprints touch it, all of scene A."""
    scene_a = chips.loc[chips["image_id"].isin(images_of(chips, "a"))]
    west, south, east, north = scene_a.geometry.union_all().bounds
    page.evaluate(
        "b => doveMap.map.fitBounds([[b[1], b[0]], [b[3], b[2]]], {padding: [80, 80]})",
        [west, south, east, north],
    )
    corner = screen_point(page, west - (east - west) * 0.1, north + (north - south) * 0.1)
    inside = screen_point(page, west + (east - west) * 0.4, north - (north - south) * 0.4)
    page.click("#map-draw")
    page.mouse.move(*corner)
    page.mouse.down()
    page.mouse.move(*inside, steps=5)
    with page.expect_response(lambda r: r.url.endswith("/search_images")) as answer:
        page.mouse.up()
    sent = json.loads(answer.value.request.post_data or "{}")
    body = answer.value.json()
    bbox = sent["bbox"]
    assert bbox[0] < west < bbox[2] < east and south < bbox[1] < north < bbox[3]
    expect(page.locator("#map-bbox")).to_contain_text(f"box {bbox[0]}")
    area = box(*bbox)
    touching = {
        str(i)
        for i, group in chips.groupby("image_id")
        if group.geometry.union_all().intersects(area)
    }
    found = [f["id"] for f in body["features"]]
    assert set(found) == touching and 0 < len(touching) < len(scene_a["image_id"].unique())
    assert all(shape(f["geometry"]).intersects(area) for f in body["features"])
    expect(page.locator("[data-testid=result]")).to_have_count(len(found), timeout=15_000)
    expect(page.locator("path.footprint")).to_have_count(len(found))
    thumbnails_loaded(page, "img.footprint-thumb")
    page.mouse.move(0, 0)  # no tooltip in the picture
    keep_screenshot(page, tmp_path, "search_map.png", SCREENSHOTS)


def test_clearing_the_box_searches_everywhere_again(page: Page) -> None:
    with page.expect_response(lambda r: r.url.endswith("/search_images")) as answer:
        page.click("#map-clear")
    assert "bbox" not in json.loads(answer.value.request.post_data or "{}")
    expect(page.locator("#map-bbox")).to_have_text("")


def test_a_configured_basemap_is_requested_from_its_url(page: Page) -> None:
    """Runs last. serve.map.basemap_url reaches the page through /ui/map.json (its real
    answer, with a basemap added here); the reloaded page then asks that tile server (answered
    here) for tiles under the footprints."""
    tiles: list[str] = []

    def config(route: Route) -> None:
        real = route.fetch().json()
        basemap = {"url": TILES + "{z}/{x}/{y}.png", "attribution": "test tiles", "max_zoom": 19}
        route.fulfill(json={**real, "basemap": basemap})

    def tile(route: Route) -> None:
        tiles.append(route.request.url)
        route.fulfill(body=png_bytes((256, 256)), content_type="image/png")

    page.context.route("**/ui/map.json", config)  # the latest route is asked first
    page.context.route(f"{TILES}**", tile)
    page.reload()
    expect(page.locator(".leaflet-control-attribution")).to_contain_text("test tiles")
    expect(page.locator("img.leaflet-tile-loaded").first).to_be_visible(timeout=15_000)
    assert tiles and all(t.startswith(TILES) and t.endswith(".png") for t in tiles)
    expect(page.locator("#map")).not_to_have_class("no-basemap")
