"""The clip family as a registered family (``families/registry.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dove_model.families.clip.settings import ClipSettings
from dove_model.families.spec import FamilySpec
from dove_model.model.directory import COMMON_FILES
from dove_model.model.precision import TowerPrecision
from dove_model.training.run import TrainRequest, TrainResult


def _train(request: TrainRequest) -> TrainResult:
    from dove_model.families.clip.train import train_clip

    return train_clip(request)


def _encoder(model_dir: Path, device: str | torch.device, precision: TowerPrecision) -> Any:
    from dove_model.families.clip.inference import ClipEncoder

    return ClipEncoder.from_dir(model_dir, device, precision)


def _model(model_dir: Path) -> torch.nn.Module:
    from dove_model.families.clip.io import load_clip_model_dir

    return load_clip_model_dir(model_dir).model


def _tiny_profile(folder: Path) -> dict[str, Any]:
    from dove_model.families.clip.tiny import tiny_profile

    return tiny_profile(folder)


SPEC = FamilySpec(
    name="clip",
    title="open_clip",
    settings=ClipSettings,
    train=_train,
    load_encoder=_encoder,
    load_model=_model,
    required_files=COMMON_FILES,
    tiny_profile=_tiny_profile,
    pip_packages=("open-clip-torch",),
    summary="a user's open_clip checkpoint (RemoteCLIP, GeoRSCLIP), zero-shot or fine-tuned",
)
