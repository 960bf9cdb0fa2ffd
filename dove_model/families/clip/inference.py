"""The clip family's encoder: the shared cosine encoder over a clip model directory."""

from __future__ import annotations

from dove_model.families.clip.io import load_clip_model_dir
from dove_model.model.cosine_encoder import CosineEncoder


class ClipEncoder(CosineEncoder):
    load_dir = staticmethod(load_clip_model_dir)
