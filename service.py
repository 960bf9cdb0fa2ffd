"""The DOVE retrieval service (BentoML 1.4): two-stage search over an image archive.

``bentoml serve service:DoveRetrieval`` (or ``dove serve``). Model and index are found at start
from the environment (see ``dove_model.serving.settings``); nothing is read at import.
Routes: POST /search_images, /search_texts, /encode_texts, /encode_images, /info; the web page
at /ui/; BentoML's own /healthz, /livez, /readyz and /metrics.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, cast

import bentoml
import numpy as np
from bentoml.validators import ContentType
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from PIL import Image
from pydantic import AfterValidator
from starlette.responses import JSONResponse

from dove_model.config import ServeParams
from dove_model.serving.guard import RequestGuard
from dove_model.serving.limits import InputError, check_k, check_query, decode_image
from dove_model.serving.schemas import (
    CaptionResult,
    CaptionSearchResponse,
    ImageResult,
    ImageSearchResponse,
    ServiceInfo,
)

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


def _checked_text(text: str) -> str:
    try:
        return check_query(text, _serve_params().max_query_chars)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _decoded_upload(path: Path) -> Image.Image:
    """Each request's images are checked before it joins a batch: one bad upload must not
    fail the other requests batched with it."""
    limits = _serve_params()
    try:
        return decode_image(
            path.read_bytes(), max_bytes=limits.max_upload_bytes, max_pixels=limits.max_pixels
        )
    except InputError as exc:
        raise ValueError(str(exc)) from None


CheckedText = Annotated[str, AfterValidator(_checked_text)]
CheckedImage = Annotated[Path, ContentType("image/*"), AfterValidator(_decoded_upload)]


def _error(exc: InputError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


@bentoml.service(
    name="dove-retrieval",
    workers=1,
    threads=4,
    traffic={"timeout": 60, "max_concurrency": 64},
)
@bentoml.asgi_app(ui, path="/ui")
class DoveRetrieval:
    def __init__(self) -> None:
        from dove_model.serving.metrics import StepMetrics
        from dove_model.serving.runtime import load_runtime
        from dove_model.serving.settings import resolve_serving_config

        config = resolve_serving_config(os.environ)
        self.serve = config.params.serve
        self.runtime = load_runtime(config, StepMetrics(histogram_cls=bentoml.metrics.Histogram))

    def __is_ready__(self) -> bool:
        return self.runtime is not None

    # ------------------------------------------------------------------ search
    @bentoml.api
    async def search_images(self, query: str = "", k: int = 10) -> ImageSearchResponse:
        """Text -> the k best archive images (ROAM re-rank of the index candidates).

        Async: waiting requests hold no thread; concurrent ones are searched as one batch."""
        try:
            text = check_query(query, self.serve.max_query_chars)
            k = check_k(k, self.serve.max_k)
        except InputError as exc:
            return _error(exc)  # type: ignore[return-value]
        hits = await self.runtime.text_search((text, k))
        return ImageSearchResponse(
            query=text,
            k=k,
            results=[
                ImageResult(
                    image_id=h.image_id,
                    score=h.score,
                    candidate_score=h.candidate_score,
                    thumbnail_url=f"/ui/thumbs/{h.row}",
                    label=h.label,
                )
                for h in hits
            ],
        )

    @bentoml.api
    def search_texts(
        self, image: Annotated[Path, ContentType("image/*")], k: int = 10
    ) -> CaptionSearchResponse:
        """An uploaded image -> the k best captions of the caption gallery."""
        try:
            k = check_k(k, self.serve.max_k)
            size = image.stat().st_size
            if size > self.serve.max_upload_bytes:
                raise InputError(
                    f"image is {size} bytes; the maximum is {self.serve.max_upload_bytes}", 413
                )
            picture = decode_image(
                image.read_bytes(),
                max_bytes=self.serve.max_upload_bytes,
                max_pixels=self.serve.max_pixels,
            )
        except InputError as exc:
            return _error(exc)  # type: ignore[return-value]
        self.runtime.bind_thread()
        hits = self.runtime.searcher.search_texts(picture, k)
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
    def encode_texts(self, texts: list[CheckedText]) -> np.ndarray:
        """Global text embeddings T_G, (N, D); adaptive batching across requests."""
        self.runtime.bind_thread()
        return np.asarray(self.runtime.encoder.encode_texts(list(texts)).t_g, dtype=np.float32)

    @bentoml.api(
        batchable=True,
        max_batch_size=BATCHING.max_batch_size // 2,
        max_latency_ms=BATCHING.max_latency_ms * 2,
    )
    def encode_images(self, images: list[CheckedImage]) -> np.ndarray:
        """Global image embeddings V_M, (N, D); adaptive batching across requests."""
        pictures = cast(list[Image.Image], images)  # decoded by CheckedImage's validator
        self.runtime.bind_thread()
        return np.asarray(self.runtime.encoder.encode_images(pictures).v_m, dtype=np.float32)

    @bentoml.api
    def info(self) -> ServiceInfo:
        """Model name, version, alias, data version and gallery sizes."""
        return self.runtime.info

    # ---------------------------------------------------------------- web page
    @ui.get("/")
    def page(self) -> FileResponse:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")

    @ui.get("/static/{name}")
    def asset(self, name: str) -> FileResponse:
        path = (PAGE_DIR / name).resolve()
        if path.parent != PAGE_DIR or not path.is_file():
            raise HTTPException(404, detail=f"no asset {name!r}")
        return FileResponse(path)

    @ui.get("/thumbs/{row}")
    def thumbnail(self, row: int) -> Response:
        if not 0 <= row < self.runtime.archive.n_images:
            raise HTTPException(404, detail=f"no archive image {row}")
        try:
            data = self.runtime.thumbnail(row)
        except OSError:
            raise HTTPException(404, detail=f"archive image {row} is not readable") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


DoveRetrieval.add_asgi_middleware(RequestGuard)
