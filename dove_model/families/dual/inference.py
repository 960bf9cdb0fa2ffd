"""The dual family's encoder: the shared cosine encoder over a dual model directory."""

from __future__ import annotations

from dove_model.families.dual.io import load_dual_model_dir
from dove_model.model.cosine_encoder import CosineEncoder


class DualEncoder(CosineEncoder):
    load_dir = staticmethod(load_dual_model_dir)
