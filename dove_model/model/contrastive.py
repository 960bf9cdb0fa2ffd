"""The dual family's loss: symmetric InfoNCE (CLIP) with a learnable temperature.

Captions of one image are all positives of that image (``image_of_text``): in a batch that
holds two captions of the same scene, the second is not a negative of the first. With one
caption per image the targets are the identity, which is exactly CLIP's loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0  # CLIP's clamp: the temperature never goes below 0.01


def info_nce(
    image_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor,
    image_of_text: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of the image->text and text->image cross entropies over an (B, B) batch.

    Row ``i`` of both embeddings is one (image, caption) pair; ``image_of_text[i]`` names the
    scene of pair ``i`` so that pairs of the same scene count as positives of each other.
    Embeddings are L2-normalised here.
    """
    images = F.normalize(image_embeddings, dim=-1)
    texts = F.normalize(text_embeddings, dim=-1)
    logits = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE) * images @ texts.T
    if image_of_text is None:
        same = torch.eye(len(images), device=logits.device)
    else:
        same = (image_of_text[:, None] == image_of_text[None, :]).to(logits.dtype)
    image_to_text = -(same / same.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    text_to_image = -(same / same.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
    return (image_to_text + text_to_image) / 2


def initial_logit_scale(temperature: float = 0.07) -> nn.Parameter:
    """CLIP's initial temperature 0.07, stored as log(1/T) so that it stays positive."""
    return nn.Parameter(torch.tensor(math.log(1.0 / temperature), dtype=torch.float32))
