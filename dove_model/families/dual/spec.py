"""The dual family as a registered family (``families/registry.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dove_model.families.dual.settings import DualSettings
from dove_model.families.spec import FamilySpec
from dove_model.model.directory import COMMON_FILES
from dove_model.model.precision import TowerPrecision
from dove_model.training.run import TrainRequest, TrainResult


def _train(request: TrainRequest) -> TrainResult:
    from dove_model.families.dual.train import train_dual

    return train_dual(request)


def _encoder(model_dir: Path, device: str | torch.device, precision: TowerPrecision) -> Any:
    from dove_model.families.dual.inference import DualEncoder

    return DualEncoder.from_dir(model_dir, device, precision)


def _model(model_dir: Path) -> torch.nn.Module:
    from dove_model.families.dual.io import load_dual_model_dir

    return load_dual_model_dir(model_dir).model


# the offline towers (tf_efficientnet_lite0, MiniLM), small heads, cached features
TINY_PROFILE: dict[str, Any] = {
    "epochs": 2,
    "batch_size": 32,
    "lr": 0.001,
    "weight_decay": 0.1,
    "eval_size": 64,
    "amp": False,
    "feature_cache": True,
    "model": {
        "family": "dual",
        "backbone": "tf_efficientnet_lite0",
        "embed_dim": 64,
        "projection_hidden": 128,
        "tta_rotations": 2,
    },
}

SPEC = FamilySpec(
    name="dual",
    title="dual",
    settings=DualSettings,
    train=_train,
    load_encoder=_encoder,
    load_model=_model,
    required_files=COMMON_FILES,
    tiny_profile=lambda _folder: TINY_PROFILE,
    pip_packages=("transformers", "tokenizers", "open-clip-torch"),
    summary="pretrained image and text towers with trained projection heads (cosine search)",
)
