"""Two-stage retrieval (DOVE.md "Serving at scale"): FAISS candidates, then the ROAM re-rank.

A single-stage encoder (the dual family: its score is the cosine of the global vectors) skips
the re-rank: its candidates' FAISS scores are already its scores (``score ==
candidate_score``), and no ``rerank`` step is timed for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from dove_model.index.archive import ArchiveIndex
from dove_model.index.encoder import as_image_arrays, family_of, is_single_stage
from dove_model.index.filtered import StoredVectors, filtered_search
from dove_model.index.geo_filter import GeoFilter, GeoRows, image_mask
from dove_model.index.vectors import is_compressed
from dove_model.index.vectors import search as vector_search
from dove_model.model.encoding import Encoder
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
    """Answers queries against one archive with one model (checked to match at construction).

    ``search_images_batch`` answers many text queries in one encode, FAISS search and re-rank;
    the service feeds it concurrent requests through ``dove_model.serving.coalesce``.
    """

    def __init__(
        self,
        encoder: Encoder,
        archive: ArchiveIndex,
        candidates_k: int,
        metrics: StepMetrics | None = None,
    ) -> None:
        archive.check_model(str(encoder.fingerprint), family_of(encoder))
        self.encoder = encoder
        self.single_stage = is_single_stage(encoder)
        # a compressed index's scores are approximate; a single-stage model re-scores its
        # candidates exactly with the stored (memory-mapped, float16) image vectors
        self.exact_rescore = self.single_stage and is_compressed(archive.image_index)
        self.archive = archive
        self.candidates_k = candidates_k
        self.metrics = metrics
        # hit fields as plain arrays: a pandas row lookup per hit costs more than the re-rank
        self._image_ids = archive.images["image_id"].astype(str).to_numpy(dtype=object)
        self._labels = np.array([_optional_str(v) for v in archive.images["label"]], object)
        self._caption_texts = archive.captions["caption"].astype(str).to_numpy(dtype=object)
        self._caption_images = archive.captions["image_row"].to_numpy(dtype=np.int64)
        # the footprints' spatial tree and time spans, for bbox / intersects / datetime
        self.geo_rows = GeoRows(archive.geo) if archive.geo is not None else None
        self._stored_captions: StoredVectors | None = None

    def image_mask(self, where: GeoFilter) -> np.ndarray | None:
        """The image rows ``where`` allows (None: no filter); ``GeoFilterError`` when it
        filters and this index has no geo metadata."""
        return image_mask(self.geo_rows, where)

    def _step(self, step: Step, direction: str, count: int = 1) -> AbstractContextManager[None]:
        return self.metrics.time(step, direction, count) if self.metrics else nullcontext()

    def search_images(self, query: str, k: int, mask: np.ndarray | None = None) -> list[ImageHit]:
        """Text -> the ``k`` best archive images (among the rows ``mask`` allows)."""
        return self.search_images_batch([(query, k)], [mask])[0]

    def search_images_batch(
        self,
        requests: list[tuple[str, int]],
        masks: Sequence[np.ndarray | None] | None = None,
    ) -> list[list[ImageHit]]:
        """(query, k) pairs -> each query's ``k`` best images, in one encode/search/re-rank;
        ``masks``: per query, the image rows it may return (None: all). A masked query's
        candidates are the exact top candidates among its allowed rows (``filtered.py``)."""
        n = len(requests)
        if self.metrics:
            self.metrics.batch(TEXT_TO_IMAGE, n)
        with self._step("encode", TEXT_TO_IMAGE, n):
            text = self.encoder.encode_texts([query for query, _ in requests])
        want = max(max(k for _, k in requests), self.candidates_k)
        with self._step("candidate_search", TEXT_TO_IMAGE, n):
            global_scores, ids = self._image_candidates(
                np.asarray(text.t_g, dtype=np.float32), want, masks
            )
        found = ids >= 0  # FAISS pads with -1 when it finds fewer than asked
        rows = np.where(found, ids, 0)
        if self.exact_rescore:
            vectors = self.archive.rerank_arrays(rows.reshape(-1)).v_m.reshape(*rows.shape, -1)
            exact = np.einsum("qkd,qd->qk", vectors, np.asarray(text.t_g, dtype=np.float32))
            scores, order = _ranked(exact.astype(np.float32), found)
        elif self.single_stage:
            scores, order = _ranked(np.array(global_scores, dtype=np.float32), found)
        else:
            with self._step("rerank", TEXT_TO_IMAGE, n):
                arrays = self.archive.rerank_arrays(rows.reshape(-1))
                rerank = self.encoder.score_text_candidates(
                    arrays, text, np.arange(rows.size).reshape(rows.shape)
                )
                scores, order = _ranked(np.asarray(rerank, dtype=np.float32), found)
        return [
            [
                ImageHit(
                    row=int(rows[q, i]),
                    image_id=str(self._image_ids[rows[q, i]]),
                    score=float(scores[q, i]),
                    candidate_score=float(global_scores[q, i]),
                    label=self._labels[rows[q, i]],
                )
                for i in order[q, : min(k, int(found[q].sum()))]
            ]
            for q, (_, k) in enumerate(requests)
        ]

    def _image_candidates(
        self, t_g: np.ndarray, want: int, masks: Sequence[np.ndarray | None] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (queries, width), ids -1 where a query found fewer."""
        index = self.archive.image_index
        if masks is None or all(m is None for m in masks):
            return vector_search(index, t_g, want)
        parts = [
            vector_search(index, t_g[q : q + 1], want)
            if mask is None
            else filtered_search(index, self.archive.arrays.v_m, t_g[q], want, np.flatnonzero(mask))
            for q, mask in enumerate(masks)
        ]
        return _padded(parts)

    def _caption_candidates(
        self, v_m: np.ndarray, want: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self.archive.caption_index
        if mask is None:
            return vector_search(index, v_m, want)
        allowed = np.flatnonzero(mask[self._caption_images])
        return _padded([filtered_search(index, self._caption_vectors(), v_m[0], want, allowed)])

    def _caption_vectors(self) -> StoredVectors:
        if self._stored_captions is None:
            self._stored_captions = StoredVectors(self.archive.caption_index)
        return self._stored_captions

    def search_texts(
        self, image: Image.Image, k: int, mask: np.ndarray | None = None
    ) -> list[CaptionHit]:
        """Image -> the ``k`` best captions of the caption gallery (of the images ``mask``
        allows)."""
        if self.archive.caption_index is None:
            return []
        with self._step("encode", IMAGE_TO_TEXT):
            parts = as_image_arrays(self.encoder.encode_images([image]))
        with self._step("candidate_search", IMAGE_TO_TEXT):
            global_scores, ids = self._caption_candidates(
                parts.v_m, max(k, self.candidates_k), mask
            )
            keep = ids[0] >= 0
            rows, global_scores = ids[0][keep], global_scores[0][keep]
        texts = [str(t) for t in self._caption_texts[rows]]
        if not texts:  # a filter that allows no caption
            return []
        if self.single_stage:  # the caption index holds the model's own caption vectors
            scores = np.asarray(global_scores, dtype=np.float32)
            order = np.argsort(-scores, kind="stable")[:k]
        else:
            with self._step("rerank", IMAGE_TO_TEXT):
                encoded = self.encoder.encode_texts(texts)
                scores = np.asarray(self.encoder.score(parts, encoded), dtype=np.float32)[0]
                order = np.argsort(-scores, kind="stable")[:k]
        return [
            CaptionHit(
                row=int(rows[i]),
                caption=texts[i],
                image_id=str(self._image_ids[self._caption_images[rows[i]]]),
                score=float(scores[i]),
                candidate_score=float(global_scores[i]),
            )
            for i in order
        ]


def _padded(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-query (scores, ids) of different widths as one (queries, width >= 1) pair."""
    width = max(1, *(ids.shape[1] for _, ids in parts))
    scores = np.full((len(parts), width), -np.inf, np.float32)
    ids = np.full((len(parts), width), -1, np.int64)
    for q, (s, i) in enumerate(parts):
        scores[q, : i.shape[1]], ids[q, : i.shape[1]] = s[0], i[0]
    return scores, ids


def _ranked(scores: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` with FAISS's padding at -inf, and each row's order, best first."""
    scores[~found] = -np.inf
    return scores, np.argsort(-scores, axis=1, kind="stable")


def _optional_str(value: object) -> str | None:
    return None if pd.isna(value) else str(value)
