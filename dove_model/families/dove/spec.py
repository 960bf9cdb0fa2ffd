"""DOVE as a registered family (``families/registry.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dove_model.families.dove.settings import DoveSettings
from dove_model.families.spec import FamilySpec
from dove_model.model.precision import TowerPrecision
from dove_model.training.run import TrainRequest, TrainResult


def _train(request: TrainRequest) -> TrainResult:
    from dove_model.families.dove.train import train_dove

    return train_dove(request)


def _encoder(model_dir: Path, device: str | torch.device, _precision: TowerPrecision) -> Any:
    from dove_model.families.dove.inference import DoveEncoder

    return DoveEncoder.from_dir(model_dir, device)  # float32 throughout


def _model(model_dir: Path) -> torch.nn.Module:
    from dove_model.families.dove.io import load_model_dir

    return load_model_dir(model_dir).model


def _required_files() -> tuple[str, ...]:
    from dove_model.families.dove.io import MODEL_DIR_FILES

    return MODEL_DIR_FILES


# a random resnet18 with small heads: no weights to find, seconds on a CPU
TINY_PROFILE: dict[str, Any] = {
    "epochs": 2,
    "batch_size": 16,
    "lr": 1e-3,
    "resize": 72,
    "crop": 64,
    "eval_size": 64,
    "amp": False,
    "model": {
        "family": "dove",
        "backbone": "resnet18",
        "embed_dim": 32,
        "word_dim": 16,
        "vocab_min_freq": 1,
    },
}

SPEC = FamilySpec(
    name="dove",
    title="DOVE",
    settings=DoveSettings,
    train=_train,
    load_encoder=_encoder,
    load_model=_model,
    required_files=_required_files(),
    tiny_profile=lambda _folder: TINY_PROFILE,
    summary="regions and words, ROAM re-rank over FAISS candidates (the paper's model)",
)
