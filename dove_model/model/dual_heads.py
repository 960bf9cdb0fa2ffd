"""Projection heads of the dual family: tower features -> the shared embedding space.

The towers are frozen in the ``dual-cpu`` recipe, so the heads are all that learns, from a few
thousand scenes. Two things keep them from memorising those scenes (measured on UCM, see
docs/model.md): the features are standardised with the training set's statistics, and the
input is dropped out at 0.5 before a one-hidden-layer MLP.
"""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """standardise -> dropout -> Linear -> GELU -> Linear (``hidden`` 0: a single Linear)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        if hidden > 0:
            layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)]
        else:
            layers.append(nn.Linear(in_dim, out_dim))
        self.mlp = nn.Sequential(*layers)

    def fit_statistics(self, features: torch.Tensor) -> None:
        """Standardise with these (training) features from now on."""
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0).clamp_min(1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp((features - self.mean) / self.std)


class DualHeads(nn.Module):
    """The trained part of a dual model: two projection heads and the temperature."""

    def __init__(
        self, image_head: ProjectionHead, text_head: ProjectionHead, logit_scale: nn.Parameter
    ) -> None:
        super().__init__()
        self.image_head = image_head
        self.text_head = text_head
        self.logit_scale = logit_scale


def new_dual_heads(
    image_dim: int, text_dim: int, embed_dim: int, hidden: int, dropout: float
) -> DualHeads:
    """Freshly initialised heads (CLIP's initial temperature)."""
    from dove_model.model.dual_loss import initial_logit_scale

    def head(in_dim: int) -> ProjectionHead:
        return ProjectionHead(in_dim, embed_dim, hidden, dropout)

    return DualHeads(head(image_dim), head(text_dim), initial_logit_scale())
