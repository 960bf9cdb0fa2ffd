"""The one place that picks a family's code: by a model directory's config.json or by the
active training profile. Everything else calls these and stays free of family branches."""

from __future__ import annotations

from pathlib import Path

import torch

from dove_model.config import Params
from dove_model.errors import ConfigError
from dove_model.families.registry import LEGACY_FAMILY, family_spec
from dove_model.families.spec import FamilySpec
from dove_model.model.directory import CONFIG_FILE, model_family
from dove_model.model.encoding import Encoder
from dove_model.model.precision import TowerPrecision
from dove_model.training.run import EpochCallback, TrainRequest, TrainResult


def spec_of_dir(model_dir: Path | str) -> FamilySpec:
    """The spec of the family that wrote ``model_dir`` (checked to hold its files)."""
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    return family_spec(model_family(model_dir))


def check_model_dir(model_dir: Path | str) -> None:
    """Refuse a folder that lacks one of its family's model-directory files."""
    model_dir = Path(model_dir)
    has_config = (model_dir / CONFIG_FILE).is_file()
    spec = family_spec(model_family(model_dir) if has_config else LEGACY_FAMILY)
    missing = [f for f in spec.required_files if not (model_dir / f).is_file()]
    if missing:
        raise ConfigError(
            f"{model_dir}: not a {spec.title} model directory (missing {', '.join(missing)})"
        )


def load_encoder(
    model_dir: Path | str,
    device: str | torch.device = "cpu",
    tower_precision: TowerPrecision = "float32",
) -> Encoder:
    """The encoder of the family that wrote ``model_dir`` (``index.encoder.Encoder``);
    ``tower_precision`` applies to families with pretrained towers (``model/precision.py``)."""
    model_dir = Path(model_dir)
    return spec_of_dir(model_dir).load_encoder(model_dir, device, tower_precision)


def train(
    dataset_dir: Path | str,
    params: Params,
    out_dir: Path | str,
    *,
    resume: bool = True,
    progress: bool = True,
    on_epoch_end: EpochCallback | None = None,
) -> TrainResult:
    """The train stage: the active profile's family trains on ``dataset_dir``'s train split
    and keeps its best ``train.val_split`` epoch in ``out_dir/model``.

    ``resume``: continue from ``out_dir``'s last checkpoint when one exists (it must belong to
    the same model settings and dataset version). ``on_epoch_end`` receives each epoch's
    record on rank 0 (e.g. to log it to MLflow).
    """
    request = TrainRequest(Path(dataset_dir), params, Path(out_dir), resume, progress, on_epoch_end)
    return family_spec(request.settings.family).train(request)


def pip_packages(model_dir: Path | str) -> tuple[str, ...]:
    """What the registered pyfunc of ``model_dir`` needs beyond the common packages."""
    return family_spec(model_family(Path(model_dir))).pip_packages
