"""The dual family's encoder: the shared cosine encoder over a dual model directory."""

from __future__ import annotations

from pathlib import Path

import torch

from dove_model.families.dual.io import load_dual_model_dir
from dove_model.model.cosine_encoder import CosineEncoder
from dove_model.model.precision import TowerPrecision


class DualEncoder(CosineEncoder):
    @classmethod
    def from_dir(
        cls,
        model_dir: Path | str,
        device: str | torch.device = "cpu",
        tower_precision: TowerPrecision = "float32",
    ) -> DualEncoder:
        """``tower_precision``: float32 (evaluation, the gates), or ``auto`` / bfloat16 for
        serving and indexing (``model/precision.py``)."""
        loaded = load_dual_model_dir(model_dir, device)
        return cls(
            loaded.model,
            loaded.eval_size,
            loaded.preprocess,
            device,
            Path(model_dir),
            tower_precision,
        )
