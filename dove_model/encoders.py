"""One entry point from a model directory to its encoder, whatever the family."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import torch

from dove_model.model.io import DUAL, check_model_dir, model_family
from dove_model.model.precision import TowerPrecision

if TYPE_CHECKING:
    from dove_model.dual_inference import DualEncoder
    from dove_model.inference import DoveEncoder

AnyEncoder: TypeAlias = "DoveEncoder | DualEncoder"


def load_encoder(
    model_dir: Path | str,
    device: str | torch.device = "cpu",
    tower_precision: TowerPrecision = "float32",
) -> DoveEncoder | DualEncoder:
    """``DoveEncoder`` or ``DualEncoder``, as the directory's config.json names the family;
    ``tower_precision`` applies to a dual model's towers (``model/precision.py``)."""
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    if model_family(model_dir) == DUAL:
        from dove_model.dual_inference import DualEncoder

        return DualEncoder.from_dir(model_dir, device, tower_precision)
    from dove_model.inference import DoveEncoder

    return DoveEncoder.from_dir(model_dir, device)
