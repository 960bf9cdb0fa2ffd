"""The encoder contract every family's encoder satisfies (docs/contracts.md section 3): the
:class:`Encoder` protocol and the image and caption parts it yields. A single-stage family
fills the re-rank parts with empty arrays. Evaluation, the index and the service use only
this, so they hold no family branches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ImageParts:
    """Per image, (N, D) float32 unit vectors: v_m (global index), v_mr and r (re-rank)."""

    v_m: np.ndarray
    v_mr: np.ndarray
    r: np.ndarray

    def __len__(self) -> int:
        return len(self.v_m)

    def take(self, index: np.ndarray | slice) -> ImageParts:
        return ImageParts(self.v_m[index], self.v_mr[index], self.r[index])


@dataclass(frozen=True)
class TextParts:
    """Per caption: t_g (M, D) unit, words (M, L, D), mask (M, L) bool."""

    t_g: np.ndarray
    words: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.t_g)

    def take(self, index: np.ndarray | slice) -> TextParts:
        return TextParts(self.t_g[index], self.words[index], self.mask[index])


class Encoder(Protocol):
    """What every family's encoder offers (``FamilySpec.load_encoder`` returns one)."""

    family: str  # a registered family (families/registry.py)
    single_stage: bool  # True: the global vectors are the whole score (no re-rank)

    @property
    def fingerprint(self) -> str: ...

    @property
    def params(self) -> Any: ...

    def global_score(self, images: Any, texts: Any) -> np.ndarray: ...

    def score_pairs(
        self, images: Any, texts: Any, image_index: np.ndarray, text_index: np.ndarray
    ) -> np.ndarray: ...

    def encode_images(self, images: list[Image.Image]) -> Any: ...

    def encode_texts(self, texts: list[str]) -> Any: ...

    def region_boxes(self, image_ids: Any) -> np.ndarray | None:
        """(N, R, 4) region boxes the images are encoded with, or None."""
        ...

    def unknown_words(self, text: str) -> list[str]: ...

    def score(self, images: Any, texts: Any) -> np.ndarray: ...

    def score_text_candidates(
        self, images: Any, texts: Any, candidates: np.ndarray
    ) -> np.ndarray: ...
