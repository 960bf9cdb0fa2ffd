"""The DOVE retrieval service (BentoML 1.4): two-stage search over an image archive.

``bentoml serve service:DoveRetrieval`` (or ``dove serve``). Model and index are found at start
from the environment (see ``dove_model.serving.settings``); nothing is read at import.
Routes: POST /search_images, /search_texts, /encode_texts, /encode_images, /info, /feedback
(relevance marks on a search's results, docs/operations.md); the web page at /ui/; BentoML's
own /healthz, /livez, /readyz and /metrics.

A new index version (the index root's ``CURRENT`` pointer flipped) is picked up without a
restart within ``serve.index_poll_s``; ``/info`` names the version served (docs/serving.md,
"Live index swaps").
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, cast

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException
from bentoml.validators import ContentType
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from PIL import Image
from pydantic import AfterValidator, Strict
from starlette.responses import JSONResponse

from dove_model.config import ServeParams
from dove_model.feedback.loop import FeedbackLoop, Mark, client_of
from dove_model.feedback.recent import FeedbackRefused
from dove_model.feedback.schemas import FeedbackResponse
from dove_model.serving.geo_search import (
    caption_mask,
    feature_collection,
    filtered_image_search,
    form_filter,
    item_collection,
    request_filter,
    thumbnail_url,
)
from dove_model.serving.guard import OPEN_PATHS, RequestGuard
from dove_model.serving.images import DecodeLimits, PixelBudget, decode_image
from dove_model.serving.limits import InputError, check_count, check_k, check_query
from dove_model.serving.metrics import EndpointLabels
from dove_model.serving.schemas import (
    BBox,
    CaptionResult,
    CaptionSearchResponse,
    GeoJSONGeometry,
    ImageResult,
    ImageSearchResponse,
    OutputFormat,
    ServiceInfo,
)
from dove_model.serving.search import ImageHit

PAGE_DIR = Path(__file__).resolve().parent / "serving" / "static"
# Decorator arguments are fixed when BentoML imports this file: they come from the typed
# defaults of the serve section (not from params.yaml, which is read only at start).
BATCHING = ServeParams()
ui = FastAPI(title="DOVE search page", docs_url=None, redoc_url=None, openapi_url=None)


@lru_cache(maxsize=1)
def _serve_params() -> ServeParams:
    """The serve section, resolved on first use inside the running service (not at import)."""
    from dove_model.serving.settings import resolve_serving_config

    return resolve_serving_config(os.environ).params.serve


def _decode_limits() -> DecodeLimits:
    serve = _serve_params()
    return DecodeLimits(
        serve.max_upload_bytes, serve.max_pixels, serve.decode_side, serve.max_decode_mib * 2**20
    )


class RequestRefused(BentoMLException):
    """An InputError raised while BentoML validates a request: it keeps its HTTP status
    (a ValueError there would always become a 400)."""

    @classmethod
    def of(cls, exc: InputError) -> RequestRefused:
        return cls(str(exc), error_code=HTTPStatus(exc.status))


def _checked_texts(texts: list[str]) -> list[str]:
    """Each request is checked before it joins a batch: one bad request must not fail the
    others batched with it."""
    serve = _serve_params()
    try:
        check_count(texts, serve.max_texts_per_request, "texts")
        return [check_query(text, serve.max_query_chars) for text in texts]
    except InputError as exc:
        raise RequestRefused.of(exc) from None


def _decoded_uploads(paths: list[Path]) -> list[Image.Image]:
    """Decoded before batching, like the texts, within the request's pixel budget."""
    serve = _serve_params()
    try:
        check_count(paths, serve.max_images_per_request, "images")
        budget = PixelBudget(serve.max_request_pixels)
        return [decode_image(path.read_bytes(), _decode_limits(), budget) for path in paths]
    except InputError as exc:
        raise RequestRefused.of(exc) from None


CheckedTexts = Annotated[list[str], AfterValidator(_checked_texts)]
CheckedImages = Annotated[
    list[Annotated[Path, ContentType("image/*")]], AfterValidator(_decoded_uploads)
]
StrictInt = Annotated[int, Strict()]  # "5", 5.0, 1e2 and true are not integers


def _error(exc: InputError | FeedbackRefused, ctx: Any = None) -> JSONResponse:
    """A JSON error; with the request's ``ctx`` (an API taking one), its status is set there
    too: BentoML gives a returned response the status of ``ctx.response``."""
    if ctx is not None:
        ctx.response.status_code = exc.status
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _image_results(hits: list[ImageHit]) -> list[ImageResult]:
    return [
        ImageResult(
            image_id=h.image_id,
            score=h.score,
            candidate_score=h.candidate_score,
            thumbnail_url=thumbnail_url(h),
            label=h.label,
        )
        for h in hits
    ]


@bentoml.service(
    name="dove-retrieval",
    workers=1,
    threads=4,
    traffic={"timeout": 60, "max_concurrency": 64},
)
@bentoml.asgi_app(ui, path="/ui")
class DoveRetrieval:
    def __init__(self) -> None:
        from dove_model.serving.connections import ConnectionLimits, install_connection_limits
        from dove_model.serving.metrics import IndexMetrics, StepMetrics, bound_endpoint_labels
        from dove_model.serving.runtime import load_runtime
        from dove_model.serving.settings import resolve_serving_config

        config = resolve_serving_config(os.environ)
        self.serve = serve = config.params.serve
        install_connection_limits(
            ConnectionLimits(serve.header_timeout_s, serve.max_header_bytes, serve.max_headers)
        )
        bound_endpoint_labels(ENDPOINT_LABELS)
        self.runtime = load_runtime(
            config,
            StepMetrics(histogram_cls=bentoml.metrics.Histogram),
            IndexMetrics(counter_cls=bentoml.metrics.Counter),
        )
        self.runtime.start_watching()  # live index swaps: polls every serve.index_poll_s
        self.loop = _start_feedback_loop(config.params)  # query log + /feedback (issue 29)

    def __is_ready__(self) -> bool:
        return self.runtime is not None

    @bentoml.on_shutdown
    def close_feedback_loop(self) -> None:
        """Write the query-log records still queued (within 10 s) before the process ends."""
        if self.loop is not None:
            self.loop.close()

    # ------------------------------------------------------------------ search
    @bentoml.api
    async def search_images(
        self,
        query: str = "",
        k: StrictInt = 10,
        bbox: BBox | None = None,
        intersects: GeoJSONGeometry | None = None,
        datetime: str | None = None,
        format: OutputFormat = "json",
        ctx: bentoml.Context = None,  # type: ignore[assignment]  # set by BentoML
    ) -> ImageSearchResponse:
        """Text -> the k best archive images (ROAM re-rank of the index candidates; a dual
        model's index scores are its ranking), among those the STAC filters ``bbox``,
        ``intersects`` and ``datetime`` allow (exact top-k; none allowed: no results);
        ``format: "geojson"``: an RFC 7946 FeatureCollection of footprints; ``"stac"``: a STAC
        ItemCollection.

        Async: waiting requests hold no thread; concurrent unfiltered ones are searched as one
        batch. ``unknown_words`` lists the query's words the model has never seen (they add
        nothing to the search)."""
        started = time.perf_counter()
        try:
            text = check_query(query, self.serve.max_query_chars)
            k = check_k(k, self.serve.max_k)
            where = request_filter(bbox, intersects, datetime)
            if where.empty and format == "json":
                hits = await self.runtime.text_search((text, k))
            else:
                hits, archive = await asyncio.to_thread(
                    filtered_image_search, self.runtime, text, k, where, geojson=format != "json"
                )
        except InputError as exc:
            return _error(exc, ctx)  # type: ignore[return-value]
        unknown = self.runtime.encoder.unknown_words(text)
        query_id = self._log_search(text, k, hits, started, ctx)
        if format != "json":  # geojson: RFC 7946; stac: a STAC ItemCollection
            body = (
                feature_collection(hits, archive, text, k, unknown).model_dump()
                if format == "geojson"
                else item_collection(hits, archive, text, k, unknown)
            )
            body["query_id"] = query_id
            return JSONResponse(body, media_type="application/geo+json")  # type: ignore[return-value]
        return ImageSearchResponse(
            query=text, k=k, unknown_words=unknown, results=_image_results(hits), query_id=query_id
        )

    def _log_search(
        self, text: str, k: int, hits: list[ImageHit], started: float, ctx: Any
    ) -> str | None:
        """Queue the search's query-log record (a bounded queue, written by a background
        thread: never waits on the store); its query id, or None when the log is off."""
        if self.loop is None:
            return None
        info = self.runtime.info
        return self.loop.record_search(
            text,
            k,
            [(h.image_id, h.score) for h in hits],
            (info.model_version, info.index_version),
            started,
            _client(ctx),
        )

    # ---------------------------------------------------------------- feedback
    @bentoml.api
    def feedback(
        self,
        query_id: Any = None,
        image_id: Any = None,
        relevant: Any = None,
        ctx: bentoml.Context = None,  # type: ignore[assignment]  # set by BentoML
    ) -> FeedbackResponse:
        """Mark one result of a recent search relevant (``true``) or not (``false``): the
        ``query_id`` its response carried and the result's ``image_id``. Unknown or expired
        ids are a 404; more than ``feedback.rate_per_minute`` marks a client is a 429."""
        try:
            if self.loop is None:
                raise FeedbackRefused("feedback is off (feedback.query_log.enabled)", 404)
            mark = Mark.parse(query_id, image_id, relevant)
            record = self.loop.record_mark(mark, _client(ctx))
        except FeedbackRefused as exc:
            return _error(exc, ctx)  # type: ignore[return-value]
        return FeedbackResponse(
            feedback_id=record.feedback_id,
            query_id=record.query_id,
            image_id=record.image_id,
            relevant=record.relevant,
            rank=record.rank,
        )

    @bentoml.api
    def search_texts(
        self,
        image: Annotated[Path, ContentType("image/*")],
        k: StrictInt = 10,
        bbox: str | None = None,
        intersects: str | None = None,
        datetime: str | None = None,
    ) -> CaptionSearchResponse:
        """An uploaded image -> the k best captions of the caption gallery (of the images the
        form fields ``bbox`` (``w,s,e,n``), ``intersects`` (GeoJSON) and ``datetime`` allow).

        Decoded here, on a worker thread (not while BentoML validates on the event loop)."""
        loaded = self.runtime.index  # one index throughout
        try:
            k = check_k(k, self.serve.max_k)
            mask = caption_mask(loaded, form_filter(bbox, intersects, datetime))
            size = image.stat().st_size
            if size > self.serve.max_upload_bytes:
                raise InputError(
                    f"image is {size} bytes; the maximum is {self.serve.max_upload_bytes}", 413
                )
            picture = decode_image(image.read_bytes(), _decode_limits())
        except InputError as exc:
            return _error(exc)  # type: ignore[return-value]
        self.runtime.bind_thread()
        hits = loaded.searcher.search_texts(picture, k, mask)
        return CaptionSearchResponse(
            k=k,
            results=[
                CaptionResult(
                    caption=h.caption,
                    image_id=h.image_id,
                    score=h.score,
                    candidate_score=h.candidate_score,
                )
                for h in hits
            ],
        )

    # ---------------------------------------------------------------- encoders
    @bentoml.api(
        batchable=True,
        max_batch_size=BATCHING.max_batch_size,
        max_latency_ms=BATCHING.max_latency_ms,
    )
    def encode_texts(self, texts: CheckedTexts) -> np.ndarray:
        """Global text embeddings T_G, (N, D); adaptive batching across requests."""
        self.runtime.bind_thread()
        return np.asarray(self.runtime.encoder.encode_texts(list(texts)).t_g, dtype=np.float32)

    @bentoml.api(
        batchable=True,
        max_batch_size=BATCHING.max_batch_size // 2,
        max_latency_ms=BATCHING.max_latency_ms * 2,
    )
    def encode_images(self, images: CheckedImages) -> np.ndarray:
        """Global image embeddings V_M, (N, D); adaptive batching across requests."""
        pictures = cast(list[Image.Image], images)  # decoded by CheckedImages' validator
        self.runtime.bind_thread()
        return np.asarray(self.runtime.encoder.encode_images(pictures).v_m, dtype=np.float32)

    @bentoml.api
    def info(self) -> ServiceInfo:
        """Model name, version, alias, data version, family, gallery sizes and the index
        version served (``index_refused``: a newer version this service would not load)."""
        return self.runtime.info

    # ---------------------------------------------------------------- web page
    @ui.get("/")
    def page(self) -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    @ui.get("/static/{name:path}")
    def asset(self, name: str) -> FileResponse:
        path = _page_assets().get(name)  # an allow-list: no path is built from the name
        if path is None:
            raise HTTPException(404, detail=f"no asset {name[:100]!r}")
        return FileResponse(path)

    # ---- the page's map (issue 28): footprints' extent and the basemap (serve.map)
    @ui.get("/map.json")
    def map_settings(self) -> JSONResponse:
        from dove_model.serving.map_view import map_config

        return JSONResponse(map_config(self.runtime.index.archive, self.serve.map))

    # ---- end of the map block
    @ui.get("/thumbs/{row}")
    def thumbnail(self, row: int, image_id: str | None = None) -> Response:
        """The image at ``row`` of the current index; with ``image_id`` (search results name
        both) that image wherever it is now, after an index swap too."""
        try:
            data = self.runtime.thumbnail(row, image_id)
        except OSError:
            raise HTTPException(404, detail=f"archive image {row} is not readable") from None
        if data is None:
            raise HTTPException(404, detail=f"no archive image {row} {(image_id or '')[:100]}")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def _start_feedback_loop(params: Any) -> FeedbackLoop | None:
    from dove_model.feedback.metrics import LoopMetrics

    metrics = LoopMetrics(counter_cls=bentoml.metrics.Counter, gauge_cls=bentoml.metrics.Gauge)
    return FeedbackLoop.start(params.feedback, os.environ, metrics)


def _client(ctx: Any) -> str:
    """The request's source, hashed (dove_model.feedback.loop.client_of)."""
    if ctx is None:
        return ""
    request = ctx.request
    address = request.client.host if request.client else None
    return client_of({k.lower(): v for k, v in request.headers.items()}, address)


@lru_cache(maxsize=1)
def _page_assets() -> dict[str, Path]:
    """The page's files by relative path: its own and the vendored ones (vendor/leaflet/...)."""
    files = (path for path in PAGE_DIR.rglob("*") if path.is_file() and path.name[0] != ".")
    return {path.relative_to(PAGE_DIR).as_posix(): path for path in files}


PAGE_PATHS = ("/ui", "/ui/", "/ui/map.json")
API_PATHS = (
    "/search_images",
    "/search_texts",
    "/encode_texts",
    "/encode_images",
    "/info",
    "/feedback",
)
ENDPOINT_LABELS = EndpointLabels(
    exact=frozenset(
        (*API_PATHS, *OPEN_PATHS, *PAGE_PATHS, "/", "/docs", "/docs.json", "/schema.json")
    ),
    templates={"/ui/static/": "/ui/static/{name}", "/ui/thumbs/": "/ui/thumbs/{row}"},
)
DoveRetrieval.add_asgi_middleware(RequestGuard)
