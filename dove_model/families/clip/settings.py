"""The clip family's settings (``family: clip``; docs/model.md "The clip family")."""

from __future__ import annotations

from typing import Literal

from dove_model.config import FamilySettings


class ClipSettings(FamilySettings):
    """An open_clip model the user brings (RemoteCLIP, GeoRSCLIP, any open_clip checkpoint),
    served as it is (zero-shot) or after a contrastive fine-tune of both towers."""

    family: Literal["clip"] = "clip"
    clip_arch: str  # an open_clip architecture name, e.g. ViT-B-32 (open_clip.list_models())
    # the checkpoint: a local state-dict file (.pt/.bin/.safetensors); read only to train, a
    # trained model directory holds every weight itself
    clip_checkpoint: str
    # an architecture open_clip does not ship: its config, a JSON file named <clip_arch>.json
    # (open_clip's own format); registered with open_clip before the model is built
    clip_config: str | None = None
    # True: no training, the checkpoint is evaluated, gated and registered as it is (the
    # baseline a team starts from); False: both towers fine-tuned on the train split with the
    # profile's lr (backbone_lr for the towers), epochs, batch size and augmentation
    zero_shot: bool = True
    # an image is embedded as the mean of its quarter-turns (model/views.py): 1, 2 or 4
    tta_rotations: Literal[1, 2, 4] = 1


SETTINGS = ClipSettings
