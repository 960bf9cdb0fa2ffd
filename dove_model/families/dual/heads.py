"""Projection heads of the dual family: tower features -> the shared embedding space.

The towers are frozen in the ``dual-cpu`` recipe, so the heads are all that learns, from a few
thousand scenes. Two things keep them from memorising those scenes (measured on UCM, see
docs/model.md): the features are standardised with the training set's statistics, and the
input is dropped out at 0.5 before a one-hidden-layer MLP.

With ``model.image_pool: attention`` the image tower hands over its last feature map instead
of its average, and the heads learn where in the scene to look (``AttentionPool``). On UCM with
frozen towers that read within the seed spread of average pooling (46.7 +- 0.3 against
46.4 +- 0.6 over five seeds, docs/model.md), so ``dual-cpu`` keeps the average.
"""

from __future__ import annotations

import torch
from torch import nn

from dove_model.model.views import pooled_mean


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


class AttentionPool(nn.Module):
    """(B, C, h, w) feature maps -> (B, C): a softmax over the positions of a learned linear
    score of each (standardised) position's features weights the positions.

    The score starts at zero, so an untrained pool is average pooling; the standardisation's
    shift adds the same constant to every position's score, so only the scale is kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("std", torch.ones(channels))
        self.score = nn.Parameter(torch.zeros(channels))

    def fit_statistics(self, maps: torch.Tensor) -> None:
        """Standardise with these (training) maps' per-channel spread from now on."""
        self.std.copy_(maps.transpose(0, 1).flatten(1).std(1).clamp_min(1e-6))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        positions = maps.flatten(2)  # (B, C, h*w)
        weights = torch.einsum("bcp,c->bp", positions, self.score / self.std).softmax(-1)
        return torch.einsum("bcp,bp->bc", positions, weights)


class DualHeads(nn.Module):
    """The trained part of a dual model: two projection heads, the temperature and, for an
    image tower that hands over feature maps, the attention pool."""

    def __init__(
        self,
        image_head: ProjectionHead,
        text_head: ProjectionHead,
        logit_scale: nn.Parameter,
        image_pool: AttentionPool | None = None,
    ) -> None:
        super().__init__()
        self.image_head = image_head
        self.text_head = text_head
        self.logit_scale = logit_scale
        self.image_pool = image_pool

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """One view's tower output -> (B, C): feature maps (B, C, h, w) through the attention
        pool (averaged without one); pooled features (B, C) as they are."""
        if features.dim() == 2:
            return features
        return features.mean((-2, -1)) if self.image_pool is None else self.image_pool(features)

    def fit_image_statistics(self, features: torch.Tensor, sample: int = 1024) -> None:
        """Standardise the image side with these training tower outputs: (N, C) pooled
        features, or (N, C, h, w) maps (the head sees their average over the positions, the
        attention pool the spread of a sample of ``sample`` maps)."""
        if features.dim() == 2:
            self.image_head.fit_statistics(features.float())
            return
        chunks = [
            features[s : s + 256].float().mean((-2, -1)) for s in range(0, len(features), 256)
        ]
        self.image_head.fit_statistics(torch.cat(chunks))
        if self.image_pool is not None:
            rows = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))
            self.image_pool.fit_statistics(features[rows[:sample]].float())

    def image_features(self, views: torch.Tensor) -> torch.Tensor:
        """(V, B, ...) the tower outputs of each image's views -> (B, C): pooled view by view
        (in float32), then averaged over the views (how an image is embedded)."""
        return pooled_mean(views, self.pool)


def new_dual_heads(
    image_dim: int,
    text_dim: int,
    embed_dim: int,
    hidden: int,
    dropout: float,
    attention_pool: bool = False,
) -> DualHeads:
    """Freshly initialised heads (CLIP's initial temperature); ``attention_pool``: the image
    tower hands over feature maps, pooled by a learned ``AttentionPool``."""
    from dove_model.model.contrastive import initial_logit_scale

    def head(in_dim: int) -> ProjectionHead:
        return ProjectionHead(in_dim, embed_dim, hidden, dropout)

    pool = AttentionPool(image_dim) if attention_pool else None
    return DualHeads(head(image_dim), head(text_dim), initial_logit_scale(), pool)
