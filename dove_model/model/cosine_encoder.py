"""The encoder of every family whose score is one cosine (dual, clip), behind the same API
as ``DoveEncoder`` (docs/contracts.md section 3).

The score is the cosine of one image vector and one caption vector, so the global vectors
are the whole model: ``ImageParts.v_m`` and ``TextParts.t_g`` carry them, and the re-rank
arrays are empty (zero width). Every scoring method is the same dot product, so the
two-stage search returns exactly the exhaustive ranking of its candidates, and
``single_stage`` tells the service to skip the re-rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dove_model.model.directory import model_fingerprint
from dove_model.model.encoding import ImageParts, TextParts
from dove_model.model.precision import TowerPrecision, tower_dtype
from dove_model.model.preprocess import Preprocessing, images_to_tensor


class CosineEncoder:
    """The encoder API (``model.encoding.Encoder``) over a model scored by one cosine:
    ``model`` embeds pixels and captions as unit vectors (``embed_pixels``, ``embed_texts``),
    has an ``embed_dim``, ``params`` (its family settings) and towers that may run in
    bfloat16 (``set_tower_dtype``)."""

    single_stage = True

    @staticmethod
    def load_dir(model_dir: Path, device: str | torch.device) -> Any:
        """The family's model directory as (model, eval_size, preprocess): a subclass's."""
        raise NotImplementedError

    @classmethod
    def from_dir(
        cls,
        model_dir: Path | str,
        device: str | torch.device = "cpu",
        tower_precision: TowerPrecision = "float32",
    ) -> CosineEncoder:
        """``tower_precision``: float32 (evaluation, the gates), or ``auto`` / bfloat16 for
        serving and indexing (``model/precision.py``)."""
        loaded = cls.load_dir(Path(model_dir), device)
        return cls(
            loaded.model,
            loaded.eval_size,
            loaded.preprocess,
            device,
            Path(model_dir),
            tower_precision,
        )

    def __init__(
        self,
        model: Any,
        eval_size: int,
        preprocess: Preprocessing,
        device: str | torch.device = "cpu",
        model_dir: Path | None = None,
        tower_precision: TowerPrecision = "float32",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.model.set_tower_dtype(tower_dtype(tower_precision, self.device))
        self.eval_size = eval_size
        self.preprocess = preprocess
        self.model_dir = model_dir

    @property
    def tower_dtype(self) -> torch.dtype:
        return self.model.tower_dtype

    @property
    def family(self) -> str:
        return str(self.model.params.family)

    @property
    def params(self) -> Any:
        return self.model.params

    @property
    def embed_dim(self) -> int:
        return int(self.model.embed_dim)

    @cached_property
    def fingerprint(self) -> str:
        if self.model_dir is None:
            raise ValueError("fingerprint needs an encoder loaded with from_dir")
        return model_fingerprint(self.model_dir)

    def region_boxes(self, image_ids: Sequence[str]) -> np.ndarray | None:
        """None: a single-vector model has no regions."""
        return None

    def unknown_words(self, text: str) -> list[str]:
        """Always empty: the sub-word tokenizer encodes any word."""
        return []

    @torch.inference_mode()
    def encode_images(
        self,
        images: Sequence[Image.Image],
        batch_size: int = 32,
        boxes: np.ndarray | None = None,
    ) -> ImageParts:
        if boxes is not None:
            raise ValueError(f"a {self.family} model takes no region boxes")
        vectors = [
            self.model.embed_pixels(
                images_to_tensor(
                    images[start : start + batch_size], self.eval_size, self.preprocess
                ).to(self.device)
            )
            .float()
            .cpu()
            .numpy()
            for start in range(0, len(images), batch_size)
        ]
        v_m = np.concatenate(vectors) if vectors else np.zeros((0, self.embed_dim), np.float32)
        empty = np.zeros((len(v_m), 0), np.float32)
        return ImageParts(v_m=v_m, v_mr=empty, r=empty.copy())

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> TextParts:
        vectors = [
            self.model.embed_texts(list(texts[start : start + batch_size])).float().cpu().numpy()
            for start in range(0, len(texts), batch_size)
        ]
        t_g = np.concatenate(vectors) if vectors else np.zeros((0, self.embed_dim), np.float32)
        return TextParts(
            t_g=t_g,
            words=np.zeros((len(t_g), 0, self.embed_dim), np.float32),
            mask=np.zeros((len(t_g), 0), bool),
        )

    @staticmethod
    def global_score(images: ImageParts, texts: TextParts) -> np.ndarray:
        return np.asarray(images.v_m, np.float32) @ np.asarray(texts.t_g, np.float32).T

    def score(self, images: ImageParts, texts: TextParts, chunk_size: int = 256) -> np.ndarray:
        """Cosine scores (N, M); ``chunk_size`` is accepted for API parity."""
        return self.global_score(images, texts)

    def score_pairs(
        self,
        images: ImageParts,
        texts: TextParts,
        image_index: np.ndarray,
        text_index: np.ndarray,
        chunk_size: int = 16384,
    ) -> np.ndarray:
        image_index = np.asarray(image_index, dtype=np.int64).reshape(-1)
        text_index = np.asarray(text_index, dtype=np.int64).reshape(-1)
        if image_index.shape != text_index.shape:
            raise ValueError("image_index and text_index must have the same length")
        v_m = np.asarray(images.v_m, np.float32)
        t_g = np.asarray(texts.t_g, np.float32)
        return np.einsum("pd,pd->p", v_m[image_index], t_g[text_index]).astype(np.float32)

    def score_text_candidates(
        self, images: ImageParts, texts: TextParts, candidates: np.ndarray, chunk_size: int = 256
    ) -> np.ndarray:
        v_m = np.asarray(images.v_m, np.float32)
        t_g = np.asarray(texts.t_g, np.float32)
        return np.einsum("mkd,md->mk", v_m[candidates], t_g).astype(np.float32)
