"""Typed request and response bodies of the service's HTTP API."""

from __future__ import annotations

from pydantic import BaseModel


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
    family: str = "dove"  # the model family: "dove" (two-stage) or "dual" (CLIP-style)
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
