"""Filtered search and GeoJSON results for the service (issue 28).

``/search_images`` takes the STAC API item-search filters ``bbox``, ``intersects`` and
``datetime`` (``dove_model.index.geo_filter``) and ``format: "geojson"`` (RFC 7946) or
``"stac"`` (a STAC ItemCollection); ``/search_texts``
takes the same filters as form fields (``bbox`` as ``w,s,e,n`` or a JSON list, ``intersects``
as a JSON string) and returns captions of the images they allow. Every bad value, and a
filter or GeoJSON output asked of an index without geo metadata, is an ``InputError`` (400).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import mapping, shape

from dove_model.index.archive import ArchiveIndex
from dove_model.index.geo_filter import GeoFilter, GeoFilterError, parse_filter
from dove_model.serving.limits import InputError
from dove_model.serving.runtime import LoadedIndex, ServiceRuntime
from dove_model.serving.schemas import (
    ImageFeature,
    ImageFeatureCollection,
    ImageFeatureProperties,
    Link,
)
from dove_model.serving.search import ImageHit

MAX_FILTER_CHARS = 200_000  # a form field's JSON geometry (the JSON body has its own cap)
NO_GEO = (
    "this index has no geo metadata (built from a dataset without chips.parquet): "
    'format "geojson" needs an index of scenes ingested with `dove archive ingest`'
)


def request_filter(bbox: Any, intersects: Any, datetime_: Any) -> GeoFilter:
    """The request's filters, validated (InputError 400 with the field's message)."""
    try:
        return parse_filter(bbox, intersects, datetime_)
    except GeoFilterError as exc:
        raise InputError(str(exc)) from None


def form_filter(bbox: str | None, intersects: str | None, datetime_: str | None) -> GeoFilter:
    """Filters sent as form fields (multipart ``/search_texts``)."""
    return request_filter(
        None if not bbox else _bbox_of(bbox),
        None if not intersects else _json_field("intersects", intersects),
        datetime_ or None,
    )


def _bbox_of(text: str) -> Any:
    if text.strip().startswith("["):
        return _json_field("bbox", text)
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"bbox: {text[:80]!r} is not west,south,east,north numbers") from None


def _json_field(name: str, text: str) -> Any:
    if len(text) > MAX_FILTER_CHARS:
        raise InputError(f"{name}: longer than {MAX_FILTER_CHARS} characters", 413)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON ({exc.msg})") from None


def filtered_image_search(
    runtime: ServiceRuntime, text: str, k: int, where: GeoFilter, *, geojson: bool
) -> tuple[list[ImageHit], ArchiveIndex]:
    """Text -> the k best images ``where`` allows, on one index (the current one when it
    starts) whose archive is returned with the hits. Runs on a worker thread."""
    runtime.bind_thread()
    loaded = runtime.index
    if geojson and loaded.archive.geo is None:
        raise InputError(NO_GEO)
    try:
        mask = loaded.searcher.image_mask(where)
    except GeoFilterError as exc:
        raise InputError(str(exc)) from None
    return loaded.searcher.search_images(text, k, mask), loaded.archive


def caption_mask(loaded: LoadedIndex, where: GeoFilter) -> np.ndarray | None:
    """The image mask of ``/search_texts``' filters on a loaded index (InputError: 400)."""
    try:
        return loaded.searcher.image_mask(where)
    except GeoFilterError as exc:
        raise InputError(str(exc)) from None


def thumbnail_url(hit: ImageHit) -> str:
    return f"/ui/thumbs/{hit.row}?image_id={quote(hit.image_id, safe='')}"


def feature_collection(
    hits: list[ImageHit], archive: ArchiveIndex, query: str, k: int, unknown: list[str]
) -> ImageFeatureCollection:
    """The hits as an RFC 7946 FeatureCollection: lon/lat footprints (exterior rings
    counter-clockwise), the score and rank, acquisition time, GSD, CRS and a thumbnail link."""
    assert archive.geo is not None
    return ImageFeatureCollection(
        features=[_feature(hit, rank, archive) for rank, hit in enumerate(hits, start=1)],
        query=query,
        k=k,
        numberReturned=len(hits),
        unknown_words=unknown,
    )


def _feature(hit: ImageHit, rank: int, archive: ArchiveIndex) -> ImageFeature:
    row = archive.geo.iloc[hit.row]  # type: ignore[union-attr]
    footprint = row.geometry
    geometry = None
    if footprint is not None and not footprint.is_empty:
        geometry = json.loads(json.dumps(mapping(shapely.orient_polygons(footprint))))
    thumb = thumbnail_url(hit)
    properties = ImageFeatureProperties(
        image_id=hit.image_id,
        rank=rank,
        score=hit.score,
        candidate_score=hit.candidate_score,
        datetime=_rfc3339(row.get("datetime")),
        datetime_end=_rfc3339(row.get("datetime_end")),
        gsd=None if pd.isna(row.get("gsd")) else float(row["gsd"]),
        crs=_text(row.get("crs")),
        chip_id=_text(row.get("chip_id")),
        item_id=_text(row.get("item_id")),
        collection=_text(row.get("collection")),
        label=hit.label,
        thumbnail_url=thumb,
    )
    return ImageFeature(
        id=hit.image_id,
        geometry=geometry,
        properties=properties,
        links=[Link(rel="thumbnail", href=thumb, type="image/jpeg")],
    )


STAC_VERSION = "1.0.0"


def item_collection(
    hits: list[ImageHit], archive: ArchiveIndex, query: str, k: int, unknown: list[str]
) -> dict[str, Any]:
    """The hits as a STAC ItemCollection (``format: "stac"``): one STAC Item per image, its
    footprint and bbox, ``datetime`` (``start_datetime`` / ``end_datetime`` where its chips
    differ), ``gsd``, the score and rank as ``dove:score`` / ``dove:rank``, and the thumbnail
    as an asset."""
    features = feature_collection(hits, archive, query, k, unknown).features
    return {
        "type": "FeatureCollection",
        "features": [_stac_item(feature) for feature in features],
        "links": [],
        "numberReturned": len(features),
        "query": query,
        "k": k,
        "unknown_words": unknown,
    }


def _stac_item(feature: ImageFeature) -> dict[str, Any]:
    props = feature.properties
    properties: dict[str, Any] = {"datetime": props.datetime, "dove:rank": props.rank}
    if props.datetime_end and props.datetime_end != props.datetime:
        properties.update(start_datetime=props.datetime, end_datetime=props.datetime_end)
    properties.update(
        {
            "dove:score": props.score,
            "dove:candidate_score": props.candidate_score,
            "dove:chip_id": props.chip_id,
            "dove:native_crs": props.crs,
            **({"gsd": props.gsd} if props.gsd is not None else {}),
        }
    )
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": feature.id,
        "geometry": feature.geometry,
        "properties": properties,
        "links": [link.model_dump(exclude_none=True) for link in feature.links],
        "assets": {
            "thumbnail": {"href": props.thumbnail_url, "type": "image/jpeg", "roles": ["thumbnail"]}
        },
    }
    if feature.geometry is not None:
        item["bbox"] = list(shape(feature.geometry).bounds)
    if props.collection:
        item["collection"] = props.collection
    return item


def _rfc3339(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)
