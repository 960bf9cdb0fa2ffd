"""The encoder API that evaluation, indexing and serving use (docs/contracts.md section 3).

Everything runs under ``torch.inference_mode()``; outputs are float32 numpy arrays and every
vector that is compared by cosine is L2-normalised here, explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dove_model.families.dove.io import load_model_dir
from dove_model.families.dove.model import DoveModel, ImageEmbeddings, TextEmbeddings
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.visual import load_boxes_file
from dove_model.families.dove.vocab import Vocabulary
from dove_model.model.directory import model_fingerprint
from dove_model.model.encoding import ImageParts, TextParts
from dove_model.model.preprocess import LEGACY, Preprocessing, images_to_tensor


class DoveEncoder:
    """A trained model directory, ready to encode images and captions and to score them."""

    family = "dove"
    single_stage = False  # the global index finds candidates, ROAM re-ranks them

    def __init__(
        self,
        model: DoveModel,
        vocab: Vocabulary,
        eval_size: int,
        device: str | torch.device = "cpu",
        model_dir: Path | None = None,
        preprocess: Preprocessing = LEGACY,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.vocab = vocab
        self.eval_size = eval_size
        self.model_dir = model_dir
        self.preprocess = preprocess

    @classmethod
    def from_dir(cls, model_dir: Path | str, device: str | torch.device = "cpu") -> DoveEncoder:
        loaded = load_model_dir(model_dir, device)
        return cls(
            loaded.model,
            loaded.vocab,
            loaded.eval_size,
            device,
            Path(model_dir),
            loaded.preprocess,
        )

    @property
    def params(self) -> DoveSettings:
        return self.model.params

    @property
    def embed_dim(self) -> int:
        return self.model.params.embed_dim

    @cached_property
    def fingerprint(self) -> str:
        """``model_fingerprint`` of the directory it was loaded from (an index records it to
        refuse a mismatched model)."""
        if self.model_dir is None:
            raise ValueError("fingerprint needs an encoder loaded with from_dir")
        return model_fingerprint(self.model_dir)

    def region_boxes(self, image_ids: Sequence[str]) -> np.ndarray | None:
        """The images' detector boxes when the model was trained on a boxes file (the
        paper's regions), else None: the grid."""
        boxes_file = self.params.boxes_file
        return load_boxes_file(boxes_file, list(image_ids)).numpy() if boxes_file else None

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` the vocabulary does not hold (they encode as ``<unk>``)."""
        return self.vocab.unknown_words(text)

    # ---------------------------------------------------------------------- encoding
    @torch.inference_mode()
    def encode_images(
        self,
        images: Sequence[Image.Image],
        batch_size: int = 32,
        boxes: np.ndarray | None = None,
    ) -> ImageParts:
        """Any PIL mode or size; ``boxes`` (N, N_r, 4) only for a detector-box model."""
        parts: list[ImageEmbeddings] = []
        for start in range(0, len(images), batch_size):
            batch = images_to_tensor(
                images[start : start + batch_size], self.eval_size, self.preprocess
            )
            batch_boxes = None
            if boxes is not None:
                batch_boxes = torch.as_tensor(boxes[start : start + batch_size]).float()
            parts.append(self.model.encode_image(batch.to(self.device), batch_boxes))
        if not parts:
            empty = np.zeros((0, self.embed_dim), np.float32)
            return ImageParts(empty, empty.copy(), empty.copy())
        return ImageParts(
            v_m=_numpy(torch.cat([p.v_m for p in parts])),
            v_mr=_numpy(torch.cat([p.v_mr for p in parts])),
            r=_numpy(torch.cat([p.r for p in parts])),
        )

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> TextParts:
        """Empty, unknown-word or over-long captions encode too (as <unk> / truncated)."""
        t_g, words, mask = [], [], []
        for start in range(0, len(texts), batch_size):
            ids, lengths = self.vocab.encode_batch(list(texts[start : start + batch_size]))
            out = self.model.encode_text(ids.to(self.device), lengths)
            t_g.append(_numpy(out.t_g))
            words.append(_numpy(out.words))
            mask.append(out.mask.cpu().numpy())
        if not t_g:
            d, length = self.embed_dim, self.vocab.max_len
            return TextParts(
                np.zeros((0, d), np.float32),
                np.zeros((0, length, d), np.float32),
                np.zeros((0, length), bool),
            )
        return TextParts(np.concatenate(t_g), np.concatenate(words), np.concatenate(mask))

    # ----------------------------------------------------------------------- scoring
    @torch.inference_mode()
    def score(self, images: ImageParts, texts: TextParts, chunk_size: int = 256) -> np.ndarray:
        """Full ROAM score (N, M), computed in (chunk x chunk) blocks to bound memory."""
        out = np.empty((len(images), len(texts)), np.float32)
        for i in range(0, len(images), chunk_size):
            image = self._image_tensors(images.take(slice(i, i + chunk_size)))
            for j in range(0, len(texts), chunk_size):
                text = self._text_tensors(texts.take(slice(j, j + chunk_size)))
                out[i : i + chunk_size, j : j + chunk_size] = _numpy(self.model.score(image, text))
        return out

    @torch.inference_mode()
    def score_pairs(
        self,
        images: ImageParts,
        texts: TextParts,
        image_index: np.ndarray,
        text_index: np.ndarray,
        chunk_size: int = 16384,
    ) -> np.ndarray:
        """ROAM score of the pairs (image_index[p], text_index[p]) -> (P,) (two-stage re-rank).

        Scored caption-major, like ``score_text_candidates``: the pairs are grouped by caption
        and each caption's words are read once for all of its images. ``chunk_size`` bounds the
        (caption, image) slots, padding included, that one model call scores (16384: on
        2 CPU threads 4096 is a little faster on idle cores, 2.5x slower on shared ones).
        """
        image_index = np.asarray(image_index, dtype=np.int64).reshape(-1)
        text_index = np.asarray(text_index, dtype=np.int64).reshape(-1)
        if image_index.shape != text_index.shape:
            raise ValueError("image_index and text_index must have the same length")
        out = np.empty(len(image_index), np.float32)
        if not len(out):
            return out
        gallery = self._image_tensors(images)
        for pairs, real, caption in _caption_major_chunks(text_index, chunk_size):
            cand = torch.from_numpy(image_index[pairs]).to(self.device)
            image = ImageEmbeddings(
                *(
                    t.index_select(0, cand.reshape(-1)).reshape(*cand.shape, -1)
                    for t in (gallery.v_m, gallery.v_mr, gallery.r)
                )
            )
            text = self._text_tensors(texts.take(caption))
            scores = _numpy(self.model.text_candidate_score(image, text))
            out[pairs[real]] = scores[real]
        return out

    @torch.inference_mode()
    def score_text_candidates(
        self, images: ImageParts, texts: TextParts, candidates: np.ndarray, chunk_size: int = 256
    ) -> np.ndarray:
        """ROAM score of caption t against images ``candidates[t]`` (M, K) -> (M, K).

        Text-to-image re-ranking: each caption's words are read once for its K images.
        """
        out = np.empty(candidates.shape, np.float32)
        for start in range(0, len(texts), chunk_size):
            stop = start + chunk_size
            cand = candidates[start:stop]
            image = self._image_tensors(images.take(cand.reshape(-1)))
            image = ImageEmbeddings(
                *(t.reshape(*cand.shape, -1) for t in (image.v_m, image.v_mr, image.r))
            )
            text = self._text_tensors(texts.take(slice(start, stop)))
            out[start:stop] = _numpy(self.model.text_candidate_score(image, text))
        return out

    @staticmethod
    def global_score(images: ImageParts, texts: TextParts) -> np.ndarray:
        """cos(V_M, T_G) (N, M): the first-stage score a vector index reproduces."""
        return images.v_m @ texts.t_g.T

    def _image_tensors(self, parts: ImageParts) -> ImageEmbeddings:
        return ImageEmbeddings(
            *(
                torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
                for a in (parts.v_m, parts.v_mr, parts.r)
            )
        )

    def _text_tensors(self, parts: TextParts) -> TextEmbeddings:
        # padding words cost time in IGA but add nothing: keep the chunk's longest caption
        used = np.flatnonzero(parts.mask.any(axis=0))
        width = int(used[-1]) + 1 if used.size else 1
        arrays = (parts.t_g, parts.words[:, :width], parts.mask[:, :width])
        return TextEmbeddings(
            *(torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays)
        )


def _caption_major_chunks(
    text_index: np.ndarray, slots: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Pairs grouped by caption into padded (T, K) blocks of at most ``slots`` entries each.

    Yields ``(pairs, real, caption)``: ``pairs`` (T, K) positions into ``text_index``, ``real``
    (T, K) false on padding (which repeats the row's first pair), ``caption`` (T,) each row's
    caption. A caption with more than ``slots`` pairs spans several rows; rows are ordered by
    length, longest first, so a block's rows are near its width and padding stays small.
    """
    slots = max(1, int(slots))
    n = len(text_index)
    order = np.argsort(text_index, kind="stable")
    sorted_text = text_index[order]
    group_start = np.flatnonzero(np.r_[True, sorted_text[1:] != sorted_text[:-1]])
    rank = np.arange(n) - np.repeat(group_start, np.diff(np.r_[group_start, n]))
    row_start = np.flatnonzero(rank % slots == 0)
    row_len = np.diff(np.r_[row_start, n])
    longest_first = np.argsort(-row_len, kind="stable")
    row_start, row_len = row_start[longest_first], row_len[longest_first]
    i = 0
    while i < len(row_start):
        width = int(row_len[i])
        stop = min(len(row_start), i + max(1, slots // width))
        col = np.arange(width)[None, :]
        real = col < row_len[i:stop, None]
        pairs = order[row_start[i:stop, None] + np.where(real, col, 0)]
        yield pairs, real, sorted_text[row_start[i:stop]]
        i = stop


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()
