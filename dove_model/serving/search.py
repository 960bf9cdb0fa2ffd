"""Two-stage retrieval (DOVE.md "Serving at scale"): FAISS candidates, then the ROAM re-rank."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from dove_model.index.archive import ArchiveIndex
from dove_model.index.encoder import Encoder, as_image_arrays
from dove_model.index.vectors import search as vector_search
from dove_model.serving.metrics import Step, StepMetrics

TEXT_TO_IMAGE = "text_to_image"
IMAGE_TO_TEXT = "image_to_text"


@dataclass(frozen=True)
class ImageHit:
    row: int
    image_id: str
    score: float  # ROAM score
    candidate_score: float  # global cosine from the index
    label: str | None


@dataclass(frozen=True)
class CaptionHit:
    row: int
    caption: str
    image_id: str
    score: float
    candidate_score: float


class Searcher:
    """Answers queries against one archive with one model (checked to match at construction)."""

    def __init__(
        self,
        encoder: Encoder,
        archive: ArchiveIndex,
        candidates_k: int,
        metrics: StepMetrics | None = None,
    ) -> None:
        archive.check_model(str(encoder.fingerprint))
        self.encoder = encoder
        self.archive = archive
        self.candidates_k = candidates_k
        self.metrics = metrics

    def _step(self, step: Step, direction: str) -> AbstractContextManager[None]:
        return self.metrics.time(step, direction) if self.metrics else nullcontext()

    def search_images(self, query: str, k: int) -> list[ImageHit]:
        """Text -> the ``k`` best archive images."""
        with self._step("encode", TEXT_TO_IMAGE):
            text = self.encoder.encode_texts([query])
        return self.rank_images(text, k)

    def rank_images(self, text: object, k: int) -> list[ImageHit]:
        """Re-rank candidates for one already-encoded query (``encode_texts`` output)."""
        with self._step("candidate_search", TEXT_TO_IMAGE):
            global_scores, ids = vector_search(
                self.archive.image_index,
                np.asarray(text.t_g, dtype=np.float32)[:1],
                max(k, self.candidates_k),
            )
            keep = ids[0] >= 0
            rows, global_scores = ids[0][keep], global_scores[0][keep]
        with self._step("rerank", TEXT_TO_IMAGE):
            scores = np.asarray(
                self.encoder.score(self.archive.rerank_arrays(rows), text), dtype=np.float32
            )[:, 0]
            order = np.argsort(-scores, kind="stable")[:k]
        images = self.archive.images
        return [
            ImageHit(
                row=int(rows[i]),
                image_id=str(images.iloc[rows[i]]["image_id"]),
                score=float(scores[i]),
                candidate_score=float(global_scores[i]),
                label=_optional_str(images.iloc[rows[i]]["label"]),
            )
            for i in order
        ]

    def search_texts(self, image: Image.Image, k: int) -> list[CaptionHit]:
        """Image -> the ``k`` best captions of the caption gallery."""
        if self.archive.caption_index is None:
            return []
        with self._step("encode", IMAGE_TO_TEXT):
            parts = as_image_arrays(self.encoder.encode_images([image]))
        with self._step("candidate_search", IMAGE_TO_TEXT):
            global_scores, ids = vector_search(
                self.archive.caption_index, parts.v_m, max(k, self.candidates_k)
            )
            keep = ids[0] >= 0
            rows, global_scores = ids[0][keep], global_scores[0][keep]
        captions = self.archive.captions
        texts = [str(captions.iloc[r]["caption"]) for r in rows]
        with self._step("rerank", IMAGE_TO_TEXT):
            encoded = self.encoder.encode_texts(texts)
            scores = np.asarray(self.encoder.score(parts, encoded), dtype=np.float32)[0]
            order = np.argsort(-scores, kind="stable")[:k]
        images = self.archive.images
        return [
            CaptionHit(
                row=int(rows[i]),
                caption=texts[i],
                image_id=str(images.iloc[int(captions.iloc[rows[i]]["image_row"])]["image_id"]),
                score=float(scores[i]),
                candidate_score=float(global_scores[i]),
            )
            for i in order
        ]


def _optional_str(value: object) -> str | None:
    return None if pd.isna(value) else str(value)
