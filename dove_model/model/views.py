"""The dihedral views of a scene: quarter-turns, each optionally mirrored.

An overhead image has no "up": a scene turned by 90 degrees or seen in a mirror is the same
scene, so the dual family embeds an image as the mean of its tower features over these views
(test-time augmentation) and trains on one view at a time from the cached features (the only
augmentation a feature cache allows). Measured on UCM (docs/model.md): the four quarter-turns
lift validation-selected test mR from 43.7 (the image and its mirror) to 46.7. DOVE's
backbone (``model/visual.py``) averages the quarter-turns too, turning each turn's feature maps
back before its regions are pooled (+1.7 validation-selected test mR on UCM).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ROTATIONS = (1, 2, 4)  # 1: as is; 2: 0 and 180 degrees; 4: every quarter-turn


def view_count(rotations: int, mirror: bool) -> int:
    return rotations * (2 if mirror else 1)


def dihedral_views(pixels: torch.Tensor, rotations: int, mirror: bool) -> list[torch.Tensor]:
    """(B, C, H, W) -> the ``view_count`` views, the image itself first."""
    if rotations not in ROTATIONS:
        raise ValueError(f"rotations must be one of {ROTATIONS}, not {rotations}")
    turns = [torch.rot90(pixels, k * 4 // rotations, (-2, -1)) for k in range(rotations)]
    return turns + [view.flip(-1) for view in turns] if mirror else turns


def features_per_view(
    tower: torch.nn.Module, pixels: torch.Tensor, rotations: int, mirror: bool
) -> torch.Tensor:
    """(V, B, ...) the tower's features of every view, in one batched forward (a turned image
    must be square, which the eval transform makes it)."""
    views = dihedral_views(pixels, rotations, mirror)
    features = tower(torch.cat(views))
    return features.view(len(views), len(pixels), *features.shape[1:])


def pooled_mean(
    views: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """(V, B, ...) each view's tower output -> (B, ...): through ``pool`` view by view (the
    dual heads' attention pool for feature maps), then averaged in float32."""
    return torch.stack(
        [view.float() if pool is None else pool(view.float()) for view in views]
    ).mean(0)


def mean_over_views(
    tower: torch.nn.Module,
    pixels: torch.Tensor,
    rotations: int,
    mirror: bool,
    pool: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """(B, ...) the tower's features averaged (in float32) over the views, each pooled by
    ``pool`` first: how an image is embedded."""
    return pooled_mean(features_per_view(tower, pixels, rotations, mirror), pool)
