"""The model directory (docs/contracts.md section 3): weights, config and vocabulary.

model.safetensors   weights only (no pickles)
config.json         {"family": "dove" | "dual", "model": <ModelParams dump>,
                     "eval_size": int, "format_version": 1,
                     "preprocess": {"mean": [3], "std": [3], "interpolation": str}}
                    (``preprocess`` absent in directories written before it existed: they
                    load with ``preprocess.LEGACY``, what they were trained with)
vocab.json          {"word2idx": {...}, "max_len": 47}   (DOVE only)
text_tower/         tokenizer + transformer config     (dual with the MiniLM text tower;
                    ``dual_io.py`` writes and reads the dual family's directory)

This module owns the layout: the file names, :func:`check_model_dir` and
:func:`model_fingerprint` are the only definitions; training, evaluation, the registry and
serving all use them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from dove_model.atomic import atomic_dir
from dove_model.config import FAMILIES, ModelParams
from dove_model.errors import ConfigError
from dove_model.hashing import sha256_file
from dove_model.model.dove import DoveModel
from dove_model.model.preprocess import LEGACY, Preprocessing
from dove_model.model.vocab import Vocabulary

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
MODEL_DIR_FILES = (WEIGHTS_FILE, CONFIG_FILE, VOCAB_FILE)  # a DOVE model directory
DOVE, DUAL = FAMILIES
FAMILY_NAMES = {DOVE: "DOVE", DUAL: "dual"}


@dataclass(frozen=True)
class LoadedModel:
    model: DoveModel
    vocab: Vocabulary
    params: ModelParams
    eval_size: int
    preprocess: Preprocessing


def model_family(model_dir: Path) -> str:
    """``dove`` or ``dual`` as config.json says (directories from before families: dove)."""
    path = Path(model_dir) / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (is {model_dir} a model directory?)") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    family = raw.get("family", DOVE) if isinstance(raw, dict) else None
    if family not in FAMILIES:
        raise ConfigError(f"{path}: unknown model family {family!r} (known: {', '.join(FAMILIES)})")
    return str(family)


def required_files(family: str) -> tuple[str, ...]:
    return MODEL_DIR_FILES if family == DOVE else (WEIGHTS_FILE, CONFIG_FILE)


def check_model_dir(model_dir: Path) -> None:
    """Refuse a folder that lacks one of its family's model-directory files."""
    model_dir = Path(model_dir)
    family = model_family(model_dir) if (model_dir / CONFIG_FILE).is_file() else DOVE
    missing = [f for f in required_files(family) if not (model_dir / f).is_file()]
    if missing:
        raise ConfigError(
            f"{model_dir}: not a {FAMILY_NAMES[family]} model directory "
            f"(missing {', '.join(missing)})"
        )


def model_fingerprint(model_dir: Path) -> str:
    """sha256 of the weights file: an index records it, the service refuses a mismatch."""
    return sha256_file(Path(model_dir) / WEIGHTS_FILE)


def state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_model_dir(
    model: DoveModel,
    vocab: Vocabulary,
    eval_size: int,
    target: Path,
    preprocess: Preprocessing,
) -> Path:
    """Write the three files into ``target`` atomically (the old folder is replaced whole)."""
    config = {
        "family": DOVE,
        "model": model.params.model_dump(mode="json"),
        "eval_size": eval_size,
        "format_version": FORMAT_VERSION,
        "preprocess": preprocess.to_json(),
    }
    with atomic_dir(target) as tmp:
        save_file(state_for_saving(model), str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        vocab.save(tmp / VOCAB_FILE)
    return target


@dataclass(frozen=True)
class ModelConfig:
    params: ModelParams
    eval_size: int
    preprocess: Preprocessing


def read_model_config(model_dir: Path) -> ModelConfig:
    path = model_dir / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (is {model_dir} a model directory?)") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if raw.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{path}: format_version {raw.get('format_version')!r}, this code reads "
            f"{FORMAT_VERSION}"
        )
    try:
        params = ModelParams(**raw["model"])
        eval_size = int(raw["eval_size"])
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid model config ({str(exc).splitlines()[0]})") from None
    try:
        preprocess = Preprocessing.from_json(raw["preprocess"]) if "preprocess" in raw else LEGACY
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return ModelConfig(params, eval_size, preprocess)


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


def load_model_dir(model_dir: Path | str, device: str | torch.device = "cpu") -> LoadedModel:
    model_dir = Path(model_dir)
    if model_family(model_dir) != DOVE:
        raise ConfigError(f"{model_dir}: a {model_family(model_dir)} model, not a DOVE one")
    config = read_model_config(model_dir)
    params = config.params
    vocab = Vocabulary.load(model_dir / VOCAB_FILE)
    if vocab.max_len != params.max_len:
        raise ConfigError(
            f"{model_dir / VOCAB_FILE}: max_len {vocab.max_len} but config.json says "
            f"{params.max_len}"
        )
    # weights come from the file: never look for pretrained backbone weights here
    model = DoveModel(params.model_copy(update={"pretrained": False}), len(vocab))
    model.params = params
    load_weights(model, model_dir / WEIGHTS_FILE, f"{model_dir / CONFIG_FILE}")
    model.to(device).eval()
    return LoadedModel(
        model=model,
        vocab=vocab,
        params=params,
        eval_size=config.eval_size,
        preprocess=config.preprocess,
    )
