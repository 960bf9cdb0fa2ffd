"""The slice of the model the archive index and the search pipeline need.

``dove_model.inference.DoveEncoder`` satisfies :class:`Encoder`; keeping the search code on
this small Protocol lets it be tested and benchmarked without importing torch at module load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ImageArrays:
    """Per-image arrays (N, D) each: ``v_m`` for the global index, ``v_mr`` and ``r`` for ROAM.

    Attribute names match ``dove_model.inference.ImageParts`` so either can be scored.
    """

    v_m: np.ndarray
    v_mr: np.ndarray
    r: np.ndarray

    def __len__(self) -> int:
        return int(self.v_m.shape[0])

    def take(self, index: np.ndarray | slice) -> ImageArrays:
        return ImageArrays(self.v_m[index], self.v_mr[index], self.r[index])


class Encoder(Protocol):
    """What DoveEncoder and DualEncoder offer (docs/contracts.md section 3)."""

    family: str  # "dove" | "dual"
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

    def unknown_words(self, text: str) -> list[str]: ...

    def score(self, images: Any, texts: Any) -> np.ndarray: ...

    def score_text_candidates(
        self, images: Any, texts: Any, candidates: np.ndarray
    ) -> np.ndarray: ...


def family_of(encoder: Any) -> str:
    """The encoder's model family; encoders from before families existed are DOVE."""
    return str(getattr(encoder, "family", "dove"))


def is_single_stage(encoder: Any) -> bool:
    """True when the global vectors are the whole score (the search skips the re-rank)."""
    return bool(getattr(encoder, "single_stage", False))


def as_image_arrays(parts: Any) -> ImageArrays:
    """Copy whatever ``encode_images`` returned into plain float32 arrays."""
    return ImageArrays(
        v_m=np.asarray(parts.v_m, dtype=np.float32),
        v_mr=np.asarray(parts.v_mr, dtype=np.float32),
        r=np.asarray(parts.r, dtype=np.float32),
    )
