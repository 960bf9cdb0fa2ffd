"""The family contract: what a model family gives the rest of the system.

Evaluation, the index, the pipeline, the components, the DAG and the service see a family
only through this (and through the ``Encoder`` protocol of ``index/encoder.py`` that its
encoder satisfies); ``families/dispatch.py`` is the one place that picks a family's spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dove_model.config import FamilySettings
from dove_model.model.encoding import Encoder
from dove_model.model.precision import TowerPrecision
from dove_model.training.run import TrainRequest, TrainResult

# model directory -> its encoder (device, the towers' number format where the family has one)
EncoderLoader = Callable[[Path, "str | torch.device", TowerPrecision], Encoder]


@dataclass(frozen=True)
class FamilySpec:
    """One model family: its settings, training, model directory, encoder and packaging."""

    name: str  # the registry key and ``family:`` in params.yaml and config.json
    title: str  # how messages name it ("DOVE", "dual", "open_clip")
    settings: type[FamilySettings]
    # the train stage: dataset, params (active profile), out_dir -> a model directory
    train: Callable[[TrainRequest], TrainResult]
    # model directory -> an encoder satisfying ``model.encoding.Encoder``
    load_encoder: EncoderLoader
    # model directory -> the torch module, loaded strictly (the contract tests round-trip it)
    load_model: Callable[[Path], torch.nn.Module]
    # files a model directory of this family must hold (beyond the shared ones it may list)
    required_files: tuple[str, ...]
    # a scratch folder -> a tiny, offline training profile (``train.profiles.<p>``) that runs
    # in seconds on a CPU: what the contract tests (tests/unit/test_family_contract.py) train
    tiny_profile: Callable[[Path], dict[str, Any]]
    # distributions the registered MLflow pyfunc needs beyond the common ones
    pip_packages: tuple[str, ...] = ()
    # one line that says what the family is (docs, messages)
    summary: str = ""
