"""The model directory every family writes (docs/contracts.md section 3).

model.safetensors   weights only (no pickles)
config.json         {"family": <a registered family>, "model": <its settings>,
                     "eval_size": int, "format_version": 1,
                     "preprocess": {"mean": [3], "std": [3], "interpolation": str}}
                    (``preprocess`` absent in directories written before it existed: they
                    load with ``preprocess.LEGACY``, what they were trained with)
...                 whatever else the family needs (DOVE: vocab.json; the dual family's
                    MiniLM tower: text_tower/), named in its ``FamilySpec.required_files``

This module owns the shared layout: the file names, the config, the fingerprint and the
strict weight loading; each family's ``io.py`` adds its own files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from dove_model.atomic import atomic_dir
from dove_model.config import FamilySettings
from dove_model.errors import ConfigError
from dove_model.families.registry import LEGACY_FAMILY, UnknownFamily, settings_class
from dove_model.hashing import sha256_file
from dove_model.model.preprocess import LEGACY, Preprocessing

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
COMMON_FILES = (WEIGHTS_FILE, CONFIG_FILE)


@dataclass(frozen=True)
class ModelConfig:
    params: FamilySettings
    eval_size: int
    preprocess: Preprocessing


def _read_json(model_dir: Path) -> dict:
    path = Path(model_dir) / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (is {model_dir} a model directory?)") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return raw


def model_family(model_dir: Path) -> str:
    """The family config.json names (directories from before families: the legacy one)."""
    family = _read_json(model_dir).get("family", LEGACY_FAMILY)
    try:
        settings_class(family)
    except UnknownFamily as exc:
        raise ConfigError(f"{Path(model_dir) / CONFIG_FILE}: {exc}") from None
    return str(family)


def read_model_config(model_dir: Path) -> ModelConfig:
    """The directory's settings (as its family's settings class), eval size, preprocessing.
    Keys the family does not know are dropped: directories written before each family had
    its own settings carried every family's fields."""
    path = Path(model_dir) / CONFIG_FILE
    raw = _read_json(model_dir)
    if raw.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{path}: format_version {raw.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}"
        )
    settings = settings_class(model_family(model_dir))
    try:
        fields = {k: v for k, v in raw["model"].items() if k in settings.model_fields}
        params = settings.model_validate(fields)
        eval_size = int(raw["eval_size"])
    except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid model config ({str(exc).splitlines()[0]})") from None
    try:
        preprocess = Preprocessing.from_json(raw["preprocess"]) if "preprocess" in raw else LEGACY
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return ModelConfig(params, eval_size, preprocess)


def model_fingerprint(model_dir: Path) -> str:
    """sha256 of the weights file: an index records it, the service refuses a mismatch."""
    return sha256_file(Path(model_dir) / WEIGHTS_FILE)


def state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def write_model_dir(
    target: Path,
    model: torch.nn.Module,
    settings: FamilySettings,
    eval_size: int,
    preprocess: Preprocessing,
    extra_files: Callable[[Path], None] | None = None,
) -> Path:
    """Write weights, config.json and the family's ``extra_files`` into ``target``
    atomically (the old folder is replaced whole)."""
    config = {
        "family": settings.family,
        "model": settings.model_dump(mode="json"),
        "eval_size": eval_size,
        "format_version": FORMAT_VERSION,
        "preprocess": preprocess.to_json(),
    }
    with atomic_dir(Path(target)) as tmp:
        save_file(state_for_saving(model), str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        if extra_files is not None:
            extra_files(tmp)
    return Path(target)


def load_weights(model: torch.nn.Module, weights_file: Path, what: str) -> None:
    """Strict load; a missing, extra or mis-shaped tensor is a ConfigError naming it."""
    try:
        state = load_file(str(weights_file))
    except FileNotFoundError:
        raise ConfigError(f"{weights_file}: weights file not found") from None
    except Exception as exc:  # safetensors raises its own error type for a corrupt file
        raise ConfigError(f"{weights_file}: not a readable safetensors file ({exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ConfigError(
            f"{weights_file}: weights do not match {what}: "
            f"missing {missing[:3]}, unexpected {extra[:3]}"
        )
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"{weights_file}: tensor {name} has shape {tuple(state[name].shape)}, "
                f"{what} expects {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=True)


def expect_family(model_dir: Path, family: str, display: str) -> None:
    """A ConfigError when ``model_dir`` holds another family's model."""
    found = model_family(model_dir)
    if found != family:
        raise ConfigError(f"{model_dir}: a {found} model, not a {display} one")
