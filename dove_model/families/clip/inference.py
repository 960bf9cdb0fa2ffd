"""The clip family's encoder: the shared cosine encoder over a clip model directory."""

from __future__ import annotations

from pathlib import Path

import torch

from dove_model.families.clip.io import load_clip_model_dir
from dove_model.model.cosine_encoder import CosineEncoder
from dove_model.model.precision import TowerPrecision


class ClipEncoder(CosineEncoder):
    @classmethod
    def from_dir(
        cls,
        model_dir: Path | str,
        device: str | torch.device = "cpu",
        tower_precision: TowerPrecision = "float32",
    ) -> ClipEncoder:
        loaded = load_clip_model_dir(model_dir, device)
        return cls(
            loaded.model,
            loaded.eval_size,
            loaded.preprocess,
            device,
            Path(model_dir),
            tower_precision,
        )
