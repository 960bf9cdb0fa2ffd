"""Validation recalls during training, from in-memory features (no model directory needed)."""

from __future__ import annotations

import numpy as np
import torch

from dove_model.families.dove.model import DoveModel, ImageEmbeddings, TextEmbeddings
from dove_model.families.dove.visual import PooledFeatures
from dove_model.families.dove.vocab import Vocabulary
from dove_model.metrics import retrieval_metrics


@torch.inference_mode()
def embed_split(
    model: DoveModel,
    features: PooledFeatures,
    captions: list[str],
    vocab: Vocabulary,
    device: torch.device,
    chunk: int = 256,
) -> tuple[ImageEmbeddings, TextEmbeddings]:
    images = [
        model.image_embeddings(
            PooledFeatures(
                features.levels[i : i + chunk].to(device),
                features.regions[i : i + chunk].to(device),
            )
        )
        for i in range(0, len(features.levels), chunk)
    ]
    texts = [
        model.encode_text(*(t.to(device) for t in vocab.encode_batch(captions[i : i + chunk])))
        for i in range(0, len(captions), chunk)
    ]
    # padding words cost time in IGA but add nothing: keep the longest caption's width
    mask = torch.cat([t.mask for t in texts])
    width = int(mask.any(dim=0).nonzero().max()) + 1
    return (
        ImageEmbeddings(
            *(torch.cat([getattr(p, f) for p in images]) for f in ("v_m", "v_mr", "r"))
        ),
        TextEmbeddings(
            t_g=torch.cat([t.t_g for t in texts]),
            words=torch.cat([t.words for t in texts])[:, :width],
            mask=mask[:, :width],
        ),
    )


@torch.inference_mode()
def chunked_scores(
    model: DoveModel, image: ImageEmbeddings, text: TextEmbeddings, chunk: int = 256
) -> np.ndarray:
    rows = []
    for i in range(0, len(image.v_m), chunk):
        img = ImageEmbeddings(
            image.v_m[i : i + chunk], image.v_mr[i : i + chunk], image.r[i : i + chunk]
        )
        cols = []
        for j in range(0, len(text.t_g), chunk):
            txt = TextEmbeddings(
                text.t_g[j : j + chunk], text.words[j : j + chunk], text.mask[j : j + chunk]
            )
            cols.append(model.score(img, txt).float().cpu())
        rows.append(torch.cat(cols, dim=1))
    return torch.cat(rows).numpy()


def validation_metrics(
    model: DoveModel,
    features: PooledFeatures,
    captions: list[str],
    caption_image: np.ndarray,
    vocab: Vocabulary,
    device: torch.device,
    chunk: int = 256,
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        image, text = embed_split(model, features, captions, vocab, device, chunk)
        return retrieval_metrics(chunked_scores(model, image, text, chunk), caption_image)
    finally:
        model.train(was_training)
