"""The clip family's model directory: the shared layout (``model/directory.py``) with both
open_clip towers in its weights, plus ``open_clip/<arch>.json``, the architecture's config,
so that a directory loads wherever open_clip is installed, even for an architecture the user
registered themselves (``open_clip.add_model_config``): no checkpoint, no download."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from dove_model.errors import ConfigError
from dove_model.families.clip.model import ClipModel, register_arch
from dove_model.families.clip.settings import ClipSettings
from dove_model.model.directory import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    expect_family,
    load_weights,
    read_model_config,
    write_model_dir,
)
from dove_model.model.preprocess import Preprocessing

ARCH_DIR = "open_clip"


@dataclass(frozen=True)
class LoadedClip:
    model: ClipModel
    eval_size: int
    preprocess: Preprocessing


def save_clip_model_dir(model: ClipModel, target: Path) -> Path:
    """Write the directory into ``target`` atomically (the old folder is replaced whole)."""
    import open_clip

    arch = model.params.clip_arch
    size, prep = model.input_spec

    def arch_config(tmp: Path) -> None:
        (tmp / ARCH_DIR).mkdir()
        config = open_clip.get_model_config(arch)
        (tmp / ARCH_DIR / f"{arch}.json").write_text(json.dumps(config, indent=2), "utf-8")

    return write_model_dir(target, model, model.params, size, prep, arch_config)


def _register_own_arch(model_dir: Path, arch: str) -> None:
    """Make ``arch`` known to open_clip from the directory's own copy of its config. A copy
    missing is the directory's fault, not the user's ``model.clip_config``: say so."""
    import open_clip

    config = model_dir / ARCH_DIR / f"{arch}.json"
    if not config.is_file() and arch not in open_clip.list_models():
        raise ConfigError(
            f"{model_dir}: not a complete clip model directory (missing {ARCH_DIR}/{arch}.json, "
            f"the config of {arch!r}, an architecture open_clip does not ship)"
        )
    register_arch(config, arch)


def load_clip_model_dir(model_dir: Path | str, device: str | torch.device = "cpu") -> LoadedClip:
    model_dir = Path(model_dir)
    expect_family(model_dir, "clip", "clip")
    config = read_model_config(model_dir)
    settings = config.params
    assert isinstance(settings, ClipSettings)
    _register_own_arch(model_dir, settings.clip_arch)
    model = ClipModel.build(settings.model_copy(update={"clip_config": None}), pretrained=False)
    load_weights(model, model_dir / WEIGHTS_FILE, f"{model_dir / CONFIG_FILE}")
    model.to(device).eval()
    return LoadedClip(model, config.eval_size, config.preprocess)
