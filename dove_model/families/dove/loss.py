"""Bidirectional hinge triplet ranking loss [family: VSE / SWAN], margin 0.2.

``scores[i, j]`` is the similarity of sample i's image and sample j's caption; ``positive[i, j]``
marks pairs that are correct (the same image appears more than once in a batch, so more than
the diagonal can be correct; those pairs are never used as negatives).
"""

from __future__ import annotations

import torch


def ranking_loss(
    scores: torch.Tensor, positive: torch.Tensor, margin: float, hardest_negative: bool
) -> torch.Tensor:
    diagonal = scores.diagonal()
    cost_caption = (margin + scores - diagonal[:, None]).clamp(min=0)  # image i vs captions
    cost_image = (margin + scores - diagonal[None, :]).clamp(min=0)  # caption j vs images
    cost_caption = cost_caption.masked_fill(positive, 0.0)
    cost_image = cost_image.masked_fill(positive, 0.0)
    if hardest_negative:  # VSE++
        return cost_caption.max(dim=1).values.sum() + cost_image.max(dim=0).values.sum()
    return cost_caption.sum() + cost_image.sum()
