"""Visual side: timm backbone (C3-C5), multi-scale tokens F_M, global V_M, regional F_R.

The backbone's job ends at *pooled* features: the global average of each level and the
RoIAlign-pooled region vectors. The paper's "1x1 conv to D, then global average pool" equals
"global average pool, then Linear to D" exactly (both are linear), so the trainable head works
on pooled vectors. With a frozen backbone those vectors are a pure function of the image and
the feature cache stores them (tens of KB an image instead of full feature maps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn
from torchvision.ops import roi_align

from dove_model.errors import ConfigError
from dove_model.families.dove.settings import DoveSettings
from dove_model.model import weights
from dove_model.model.views import dihedral_views

LEVELS = ("C3", "C4", "C5")


def grid_boxes(grids: list[int]) -> torch.Tensor:
    """[ours] A fixed multi-scale grid, normalised (x1, y1, x2, y2): 2x2+3x3+4x4 = 29 boxes."""
    boxes = [
        [col / g, row / g, (col + 1) / g, (row + 1) / g]
        for g in grids
        for row in range(g)
        for col in range(g)
    ]
    return torch.tensor(boxes, dtype=torch.float32)


def load_boxes_file(path: Path | str, image_ids: list[str]) -> torch.Tensor:
    """Per-image detector boxes: JSON ``{"<image_id>": [[x1, y1, x2, y2], ...]}``.

    Coordinates are fractions of the image width/height in [0, 1]; every image has the same
    number of boxes (the paper family used 36). Returns (N_images, N_r, 4).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the boxes file ({exc})") from None
    out = []
    for image_id in image_ids:
        if image_id not in raw:
            raise ConfigError(f"{path}: no boxes for image {image_id!r}")
        boxes = torch.tensor(raw[image_id], dtype=torch.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not bool(((boxes >= 0) & (boxes <= 1)).all()):
            raise ConfigError(
                f"{path}: boxes of {image_id!r} must be [[x1,y1,x2,y2], ...] in [0,1]"
            )
        if out and boxes.shape != out[0].shape:
            raise ConfigError(
                f"{path}: image {image_id!r} has {len(boxes)} boxes, expected "
                f"{len(out[0])} (every image needs the same number)"
            )
        out.append(boxes)
    return torch.stack(out)


def create_timm_backbone(params: DoveSettings) -> nn.Module:
    """timm ``features_only`` model giving its last three levels (C3, C4, C5 for a ResNet).

    ``pretrained: true`` never downloads. The weights come from ``pretrained_path`` (the
    user's own timm weights file), else the offline store (``model/weights.py``: the
    EfficientNet-Lite backbones), else a timm/Hugging Face cache entry; otherwise it says what
    is missing.
    """
    kwargs: dict = {"features_only": True, "out_indices": (-3, -2, -1)}
    if not params.pretrained:
        return timm.create_model(params.backbone, pretrained=False, **kwargs)
    weights_file = params.pretrained_path or _offline_weights(params.backbone)
    if weights_file is None or not Path(weights_file).is_file():
        raise ConfigError(
            f"model.pretrained is true but no weights for {params.backbone!r} are available "
            f"offline: {params.pretrained_path or 'none in the timm/Hugging Face cache'}; "
            f"backbones with packaged offline weights: {', '.join(sorted(weights.SOURCES))} "
            "(`dove weights list`); or set model.pretrained_path to a local timm weights file, "
            "or model.pretrained: false"
        )
    try:
        return timm.create_model(
            params.backbone,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(weights_file), "hf_hub_id": None, "url": None},
            **kwargs,
        )
    except (RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{weights_file}: cannot load weights for {params.backbone} ({first})"
        ) from None


def _offline_weights(backbone: str) -> str | None:
    if backbone in weights.SOURCES:
        return str(weights.resolve(backbone))
    return _cached_weights(backbone)


def _cached_weights(backbone: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.get_pretrained_cfg(backbone)
    except (ImportError, RuntimeError):
        return None
    if cfg is None or not cfg.hf_hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(found, str):
            return found
    return None


@dataclass(frozen=True)
class PooledFeatures:
    """What the backbone hands the head: ``levels`` (B, C3+C4+C5), ``regions`` (B, N_r, C_r)."""

    levels: torch.Tensor
    regions: torch.Tensor


class Backbone(nn.Module):
    def __init__(self, params: DoveSettings) -> None:
        super().__init__()
        self.body = create_timm_backbone(params)
        self.level_channels: list[int] = list(self.body.feature_info.channels())
        self.region_index = LEVELS.index(params.region_level)
        self.region_channels = self.level_channels[self.region_index]
        self.register_buffer("grid", grid_boxes(params.region_grids), persistent=False)
        self.rotations = params.tta_rotations

    @property
    def n_grid_regions(self) -> int:
        return int(self.grid.shape[0])

    def forward(self, images: torch.Tensor, boxes: torch.Tensor | None = None) -> PooledFeatures:
        """``boxes``: optional (B, N_r, 4) normalised per-image boxes; default the grid.

        With ``tta_rotations`` > 1 and the backbone in eval mode (frozen, or evaluating), the
        features are the mean over the image's quarter-turns: each turn's feature maps are
        turned back before pooling, so a region keeps its place in the image. A trained
        backbone sees one view per step (its augmentation rotates instead).
        """
        if self.rotations == 1 or self.training:
            return self._pool(self.body(images), boxes)
        if images.shape[-1] != images.shape[-2]:
            raise ValueError(f"quarter-turn views need square images, got {tuple(images.shape)}")
        views = dihedral_views(images, self.rotations, mirror=False)
        per_view = self.body(torch.cat(views))
        pooled = []
        for k, maps in enumerate(zip(*(m.chunk(len(views)) for m in per_view), strict=True)):
            turns_back = -(k * 4 // self.rotations)
            pooled.append(self._pool([torch.rot90(m, turns_back, (-2, -1)) for m in maps], boxes))
        return PooledFeatures(
            levels=torch.stack([p.levels.float() for p in pooled]).mean(0),
            regions=torch.stack([p.regions.float() for p in pooled]).mean(0),
        )

    def _pool(self, maps: list[torch.Tensor], boxes: torch.Tensor | None) -> PooledFeatures:
        levels = torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1)
        region_map = maps[self.region_index]
        b, _, h, w = region_map.shape
        if boxes is None:
            boxes = self.grid.unsqueeze(0).expand(b, -1, -1)
        scale = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        n_r = boxes.shape[1]
        pooled = roi_align(
            region_map.float(),
            [box * scale for box in boxes.to(region_map.device)],
            output_size=2,
            spatial_scale=1.0,
            sampling_ratio=2,
            aligned=True,
        )
        regions = pooled.mean(dim=(2, 3)).reshape(b, n_r, -1)
        return PooledFeatures(levels=levels, regions=regions)


class VisualHead(nn.Module):
    """Pooled backbone features -> F_M (B, 3, D), V_M (B, D), F_R (B, N_r, D) or None."""

    def __init__(self, params: DoveSettings, level_channels: list[int], region_channels: int):
        super().__init__()
        d = params.embed_dim
        self.level_channels = level_channels
        self.level_proj = nn.ModuleList([nn.Linear(c, d) for c in level_channels])
        # the VSE baseline (no ROAM) has no use for regions
        self.region_proj = nn.Linear(region_channels, d) if params.use_roam else None
        self.learned_fusion = params.global_fusion == "learned"
        if self.learned_fusion:
            self.fusion_logits = nn.Parameter(torch.zeros(len(level_channels)))

    def forward(self, features: PooledFeatures) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        parts = torch.split(features.levels, self.level_channels, dim=1)
        f_m = torch.stack([proj(p) for proj, p in zip(self.level_proj, parts, strict=True)], 1)
        if self.learned_fusion:
            weights = torch.softmax(self.fusion_logits, dim=0)
            v_m = (f_m * weights[None, :, None]).sum(dim=1)
        else:
            v_m = f_m.mean(dim=1)
        f_r = self.region_proj(features.regions) if self.region_proj is not None else None
        return f_m, v_m, f_r
