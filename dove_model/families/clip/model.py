"""A clip-family model: an open_clip image tower and text tower, scored by cosine, nothing
added. Built from the user's checkpoint to train, or as bare structure that a model
directory's weights fill (``io.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dove_model.errors import ConfigError
from dove_model.families.clip.settings import ClipSettings
from dove_model.model.clip_towers import ClipImageTower, ClipTextTower, open_clip_towers
from dove_model.model.views import mean_over_views


def register_arch(config: Path, arch: str) -> None:
    """Make ``arch`` known to open_clip from its config file (named ``<arch>.json``)."""
    import open_clip

    if arch in open_clip.list_models():
        return
    if not config.is_file():
        raise ConfigError(f"model.clip_config {config}: file not found")
    if config.stem != arch:
        raise ConfigError(
            f"model.clip_config {config}: open_clip names an architecture after its file; "
            f"call it {arch}.json"
        )
    open_clip.add_model_config(config)


class ClipModel(nn.Module):
    def __init__(
        self, params: ClipSettings, image_tower: ClipImageTower, text_tower: ClipTextTower
    ) -> None:
        super().__init__()
        self.params = params
        self.image_tower = image_tower
        self.text_tower = text_tower

    @classmethod
    def build(cls, params: ClipSettings, *, pretrained: bool) -> ClipModel:
        """From ``params.clip_checkpoint`` (``pretrained``), else random weights to fill."""
        if params.clip_config:
            register_arch(Path(params.clip_config), params.clip_arch)
        image, text = open_clip_towers(
            params.clip_arch, params.clip_checkpoint, pretrained=pretrained
        )
        return cls(params, image, text)

    @property
    def embed_dim(self) -> int:
        return int(self.image_tower.dim)

    @property
    def input_spec(self) -> tuple[int, Any]:
        """(square input size, preprocessing) the image tower was built for."""
        prep, size = self.image_tower.input
        return size, prep

    @property
    def tower_dtype(self) -> torch.dtype:
        return next(self.image_tower.parameters()).dtype

    def set_tower_dtype(self, dtype: torch.dtype) -> ClipModel:
        """Run both towers in ``dtype`` (``model/precision.py``)."""
        self.to(dtype)
        return self

    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, D) unit vectors, averaged over the turns."""
        features = mean_over_views(
            self.image_tower, pixels.to(self.tower_dtype), self.params.tta_rotations, False
        )
        return nn.functional.normalize(features.float(), dim=-1)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return nn.functional.normalize(self.text_tower(list(texts)).float(), dim=-1)

    # ---- what the shared fine-tune (training/finetune.py) asks of a model
    def training_embeddings(
        self, pixels: torch.Tensor, texts: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Both towers with gradients, and the checkpoint's own learned temperature."""
        scale = self.text_tower.clip.logit_scale
        return self.image_tower(pixels), self.text_tower(list(texts)), scale.reshape(())

    def optimiser_groups(self, lr: float, tower_lr: float) -> list[dict[str, Any]]:
        """Nothing here is fresh: every weight is the checkpoint's, at ``tower_lr``."""
        return [{"params": list(self.parameters()), "lr": tower_lr}]

    def prepare_training(self, images: torch.Tensor, captions: Sequence[str]) -> None:
        """Nothing to standardise: the checkpoint's projections stay as they are."""
