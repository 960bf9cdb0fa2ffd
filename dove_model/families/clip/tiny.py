"""A tiny random open_clip model, what the family's tiny profile trains (the contract tests,
``FamilySpec.tiny_profile``): an architecture config open_clip does not ship (registered from
a file named after it, as a user registers theirs) and a plain state dict saved as RemoteCLIP
ships its checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_CLIP = "dove-test-tiny-clip"


def tiny_clip_config(width: int = 64, embed_dim: int = 32) -> dict[str, Any]:
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "image_size": 32,
            "layers": 2,
            "width": width,
            "head_width": 32,
            "patch_size": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": width,
            "heads": 2,
            "layers": 2,
        },
    }


def write_tiny_clip(
    folder: Path, name: str = TINY_CLIP, width: int = 64, embed_dim: int = 32, seed: int = 0
) -> tuple[Path, Path]:
    """(config file, checkpoint file) of a tiny random open_clip model in ``folder``; the
    architecture is registered with open_clip in this process."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{name}.json"
    config.write_text(json.dumps(tiny_clip_config(width, embed_dim)), encoding="utf-8")
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None).eval()
    checkpoint = folder / f"{name}.pt"
    torch.save(model.state_dict(), checkpoint)
    return config, checkpoint


def tiny_profile(folder: Path) -> dict[str, Any]:
    """A fine-tuned tiny clip model: 2 epochs on 32-pixel inputs (seconds on a CPU)."""
    config, checkpoint = write_tiny_clip(folder / "tiny-clip")
    model = {
        "family": "clip",
        "clip_arch": TINY_CLIP,
        "clip_checkpoint": str(checkpoint),
        "clip_config": str(config),
        "zero_shot": False,
    }
    return {
        "epochs": 2,
        "batch_size": 16,
        "lr": 1e-4,
        "resize": 40,
        "crop": 32,
        "amp": False,
        "model": model,
    }
