"""Typed request and response bodies of the service's HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

# /search_images' STAC item-search filters and output format (issue 28); the values are
# checked by dove_model.index.geo_filter (a clear 400 each), not by the type alone
BBox = list[Any]  # [west, south, east, north] in degrees (or the 6-number 3D form)
GeoJSONGeometry = dict[str, Any]  # a GeoJSON geometry object (RFC 7946: lon/lat)
OutputFormat = Literal["json", "geojson", "stac"]


class ImageResult(BaseModel):
    image_id: str
    score: float
    candidate_score: float
    thumbnail_url: str
    label: str | None = None


class ImageSearchResponse(BaseModel):
    query: str
    k: int
    results: list[ImageResult]
    unknown_words: list[str] = []  # query words the model's vocabulary does not hold
    query_id: str | None = None  # name it in POST /feedback (None: the query log is off)


class Link(BaseModel):
    rel: str
    href: str
    type: str | None = None


class ImageFeatureProperties(BaseModel):
    image_id: str
    rank: int  # 1 = best
    score: float
    candidate_score: float
    datetime: str | None = None  # earliest acquisition, RFC 3339 UTC
    datetime_end: str | None = None  # latest, where the image's chips differ
    gsd: float | None = None
    crs: str | None = None  # the scene's native CRS (the geometry is always lon/lat)
    chip_id: str | None = None
    item_id: str | None = None
    collection: str | None = None
    label: str | None = None
    thumbnail_url: str


class ImageFeature(BaseModel):
    """One hit as an RFC 7946 Feature: its footprint (lon/lat, EPSG:4326), null when the image
    has none."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any] | None
    properties: ImageFeatureProperties
    links: list[Link]


class ImageFeatureCollection(BaseModel):
    """/search_images with ``format: "geojson"``: the hits, best first."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[ImageFeature]
    query: str
    k: int
    numberReturned: int  # the STAC API item search field name
    unknown_words: list[str] = []


class CaptionResult(BaseModel):
    caption: str
    image_id: str
    score: float
    candidate_score: float


class CaptionSearchResponse(BaseModel):
    k: int
    results: list[CaptionResult]


class IndexRefusal(BaseModel):
    """A new index version the service would not swap to (it kept serving the old one)."""

    version: str
    reason: str
    at: str  # ISO time of the refusal (UTC)


class ServiceInfo(BaseModel):
    model_name: str
    model_version: str
    alias: str
    data_version: str
    model_fingerprint: str
    family: str  # the model family (families/registry.py)
    single_stage: bool = False  # True: the FAISS scores are the ranking (no re-rank step)
    # the number format a dual model's towers run in (serve.tower_precision, auto resolved)
    tower_precision: str = "float32"
    n_images: int
    n_captions: int
    image_index: str
    caption_index: str | None
    candidates_k: int
    max_k: int
    index_version: str | None = None  # the version served (None: a plain, unversioned folder)
    index_created: str | None = None  # when that index was written
    # set while the index pointer names a version the service refused to swap to
    index_refused: IndexRefusal | None = None
