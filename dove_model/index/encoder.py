"""The slice of the model the archive index and the search pipeline need.

Every family's encoder (e.g. ``families.dove.inference.DoveEncoder``) satisfies
:class:`Encoder`; keeping the search code on this small Protocol lets it be tested and
benchmarked without importing torch at module load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dove_model.families.registry import LEGACY_FAMILY


@dataclass(frozen=True)
class ImageArrays:
    """Per-image arrays (N, D) each: ``v_m`` for the global index, ``v_mr`` and ``r`` for ROAM.

    Attribute names match ``dove_model.families.dove.inference.ImageParts`` so either can be scored.
    """

    v_m: np.ndarray
    v_mr: np.ndarray
    r: np.ndarray

    def __len__(self) -> int:
        return int(self.v_m.shape[0])

    def take(self, index: np.ndarray | slice) -> ImageArrays:
        return ImageArrays(self.v_m[index], self.v_mr[index], self.r[index])


def family_of(encoder: Any) -> str:
    """The encoder's model family; encoders from before families existed are the legacy one."""
    return str(getattr(encoder, "family", LEGACY_FAMILY))


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
