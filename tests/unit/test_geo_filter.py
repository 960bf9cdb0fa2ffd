"""STAC item-search filters (issue 28): bbox (antimeridian), intersects, datetime, the mask
they give over an index's geo rows, and a clear error for every bad value."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box, mapping

from dove_model.errors import ConfigError
from dove_model.index.geo_filter import (
    GeoFilterError,
    GeoRows,
    image_mask,
    parse_datetime,
    parse_filter,
)


def rows() -> GeoRows:
    """Five images: four 1x1 degree footprints (two at the antimeridian, one each side), one
    without; days 1..4 of June 2024, image 2 spanning days 3..10."""
    geo = gpd.GeoDataFrame(
        {
            "image_id": list("abcde"),
            "datetime": pd.to_datetime(
                ["2024-06-01T00:00Z", "2024-06-02T00:00Z", "2024-06-03T00:00Z", None, None],
                utc=True,
            ),
            "datetime_end": pd.to_datetime(
                ["2024-06-01T00:00Z", "2024-06-02T00:00Z", "2024-06-10T00:00Z", None, None],
                utc=True,
            ),
        },
        geometry=[box(10, 45, 11, 46), box(20, 45, 21, 46), box(179, 0, 180, 1),
                  box(-180, 0, -179, 1), None],
        crs="EPSG:4326",
    )  # fmt: skip
    return GeoRows(geo)


def matched(**kwargs: Any) -> list[int]:
    mask = image_mask(rows(), parse_filter(**kwargs))
    assert mask is not None
    return np.flatnonzero(mask).tolist()


def test_bbox_intersects_and_datetime_alone_and_together() -> None:
    assert matched(bbox=[9.5, 44, 10.5, 45.5]) == [0]
    assert matched(bbox=[-10, -10, 30, 50]) == [0, 1]
    assert matched(intersects=mapping(box(20.5, 45.5, 25, 50))) == [1]
    assert matched(intersects={"type": "Point", "coordinates": [10.5, 45.5]}) == [0]
    assert matched(datetime_="2024-06-02T00:00:00Z") == [1]
    assert matched(datetime_="2024-06-05T00:00:00Z") == [2]  # inside image 2's span
    assert matched(datetime_="../2024-06-01T12:00:00Z") == [0]
    assert matched(datetime_="2024-06-02T00:00:00+00:00/..") == [1, 2]
    assert matched(datetime_="2024-06-01T00:00:00Z/2024-06-02T00:00:00Z") == [0, 1]
    assert matched(bbox=[-10, -10, 30, 50], datetime_="2024-06-02T00:00:00Z/..") == [1]
    assert matched(bbox=[0, 0, 30, 50], intersects=mapping(box(15, 40, 40, 50))) == [1]


def test_antimeridian_bbox_is_two_boxes() -> None:
    assert matched(bbox=[179.5, 0.2, -179.5, 0.8]) == [2, 3]
    assert matched(bbox=[170, -5, -175, 5]) == [2, 3]
    assert matched(bbox=[175, -5, 178, 5]) == []


def test_a_filter_matching_nothing_is_an_empty_mask_and_no_filter_is_none() -> None:
    assert matched(bbox=[-50, -50, -40, -40]) == []
    assert matched(datetime_="2030-01-01T00:00:00Z/..") == []
    assert image_mask(rows(), parse_filter()) is None
    with pytest.raises(GeoFilterError, match="no geo metadata"):
        image_mask(None, parse_filter(bbox=[0, 0, 1, 1]))


BOWTIE = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]
BAD: list[tuple[dict[str, Any], str]] = [
    ({"bbox": [0, 0, 1]}, "4 numbers"),
    ({"bbox": "0,0,1,1"}, "4 numbers"),
    ({"bbox": [0, 0, "1", 1]}, "must be a number"),
    ({"bbox": [0, 0, float("nan"), 1]}, "finite"),
    ({"bbox": [-181, 0, 1, 1]}, "longitude"),
    ({"bbox": [0, -91, 1, 1]}, "latitude"),
    ({"bbox": [0, 10, 1, 5]}, "south 10 is north of north 5"),
    ({"intersects": {"coordinates": [0, 0]}}, "GeoJSON geometry"),
    ({"intersects": {"type": "Feature"}}, "not one of"),
    ({"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, "valid GeoJSON"),
    ({"intersects": {"type": "Polygon", "coordinates": "x"}}, "valid GeoJSON"),
    (
        {"intersects": {"type": "Polygon", "coordinates": [BOWTIE]}},
        "invalid Polygon: Self-intersection",
    ),
    ({"intersects": {"type": "Point", "coordinates": [45, 200]}}, "longitude, latitude"),
    ({"datetime_": "2024-06-01"}, "not an RFC 3339"),
    ({"datetime_": "yesterday"}, "not an RFC 3339"),
    ({"datetime_": "2024-13-01T00:00:00Z"}, "month must be"),
    ({"datetime_": "../.."}, "at least one end"),
    ({"datetime_": "2024-06-02T00:00:00Z/2024-06-01T00:00:00Z"}, "ends before it starts"),
    ({"datetime_": "a/b/c"}, "more than one"),
    ({"datetime_": ""}, "RFC 3339"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_values_are_refused_with_a_clear_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(GeoFilterError, match=message) as caught:
        parse_filter(**kwargs)
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value).split(":")[0] in {"bbox", "intersects", "datetime"}


def test_datetime_offsets_are_utc() -> None:
    start, end = parse_datetime("2024-06-01T12:00:00+02:00")
    assert start == end == pd.Timestamp("2024-06-01T10:00:00Z").value


def test_a_box_is_decided_from_bounds_exactly_as_the_tree_decides_it() -> None:
    """The bbox fast path (footprint bounds; exact tests only across the box's edge) keeps
    the same rows as the STRtree's exact intersects, for rotated and concave footprints,
    boxes touching them and boxes across the antimeridian."""
    from shapely import affinity
    from shapely.geometry import Polygon

    rng = np.random.default_rng(0)
    shapes: list[Any] = []
    corners = rng.uniform([-5, 0], [15, 10], size=(300, 2))  # densely, so box edges cut them
    corners = np.vstack([corners, rng.uniform([177, 0], [179, 10], size=(20, 2))])
    corners = np.vstack([corners, rng.uniform([-180, 0], [-178, 10], size=(20, 2))])
    for x, y in corners:
        chip = affinity.rotate(box(x, y, x + 1, y + 1), float(rng.uniform(0, 45)))
        concave = Polygon([(x, y), (x + 1, y), (x + 1, y + 1), (x + 0.5, y + 0.2), (x, y + 1)])
        shapes += [chip, concave, box(x, y, x + 0.5, y + 0.5)]
    geo_rows = GeoRows(
        gpd.GeoDataFrame(
            {"datetime": [None] * len(shapes), "datetime_end": [None] * len(shapes)},
            geometry=shapes,
        )
    )
    boxes = [
        [x, y, x + w, y + h]
        for x, y, w, h in rng.uniform([-6, -1, 0.05, 0.05], [15, 10, 3, 3], size=(300, 4))
    ]
    boxes += [[170, -60, -170, 60], [179.5, -10, -179.5, 10], [-10, -10, 10, 10]]
    boxes += [list(shapes[2].bounds)]  # exactly one small footprint: edges touching
    for bbox in boxes:
        place = parse_filter(bbox=bbox).places[0]
        fast = geo_rows.mask(parse_filter(bbox=bbox))
        tree = np.zeros(len(shapes), dtype=bool)
        tree[geo_rows.tree.query(place, predicate="intersects")] = True
        assert (fast == tree).all(), bbox
