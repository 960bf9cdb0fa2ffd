"""DOVE's settings (``train.profiles.<p>.model`` with ``family: dove``; docs/model.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dove_model.config import FamilySettings

AUTO_BACKBONE = "auto"
PAPER_BACKBONE = "resnet50"  # the paper's; its ImageNet weights are the user's own file
OFFLINE_BACKBONE = "tf_efficientnet_lite2"  # the best ImageNet weights installable offline


class DoveSettings(FamilySettings):
    """The paper's model: region and word features, ROAM re-rank, two-stage search."""

    family: Literal["dove"] = "dove"
    # a timm model name, or "auto": the paper's resnet50 when pretrained_path is given,
    # otherwise tf_efficientnet_lite2 with the offline weights (docs/model.md)
    backbone: str = PAPER_BACKBONE
    # True: weights from pretrained_path, else the offline store (`dove weights list`)
    pretrained: bool = False
    pretrained_path: str | None = None
    freeze_backbone: bool = True
    embed_dim: int = 512
    word_dim: int = 300
    max_len: int = 47
    vocab_min_freq: int = 5
    glove_path: str | None = None
    region_grids: list[int] = Field(
        default_factory=lambda: [2, 3, 4]
    )  # [ours] 4 + 9 + 16 = 29 grid regions
    region_level: Literal["C4", "C5"] = "C5"
    boxes_file: str | None = None  # per-image detector boxes instead of the grid
    global_fusion: Literal["mean", "learned"] = "mean"
    use_roam: bool = True
    use_dtga: bool = True
    share_attention: bool = False  # [ours] DTGA: one attention map for both directions
    lambda_g: float = 1.0
    margin: float = 0.2
    hardest_negative: bool = False
    # [ours] a caption whose words equal caption j's is never a negative for j's image: real
    # datasets repeat captions across images (UCM: 154 of 210 test images share all five),
    # and an identical text can never be ranked apart from its twin
    same_text_positive: bool = True
    # a frozen or evaluating backbone averages tta_rotations quarter-turns of each image, each
    # turn's feature maps turned back before the regions are pooled (model/views.py)
    tta_rotations: Literal[1, 2, 4] = 1

    def resolved(self) -> DoveSettings:
        """``backbone: auto`` made concrete: resnet50 with the user's weights file, else the
        best backbone with offline weights."""
        if self.backbone != AUTO_BACKBONE:
            return self
        backbone = PAPER_BACKBONE if self.pretrained_path else OFFLINE_BACKBONE
        return self.model_copy(update={"backbone": backbone})


SETTINGS = DoveSettings
