"""DOVE's model directory: the shared layout (``model/directory.py``) plus ``vocab.json``
({"word2idx": {...}, "max_len": 47})."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dove_model.errors import ConfigError
from dove_model.families.dove.model import DoveModel
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.vocab import Vocabulary
from dove_model.model.directory import (
    COMMON_FILES,
    CONFIG_FILE,
    WEIGHTS_FILE,
    expect_family,
    load_weights,
    read_model_config,
    write_model_dir,
)
from dove_model.model.preprocess import Preprocessing

VOCAB_FILE = "vocab.json"
MODEL_DIR_FILES = (*COMMON_FILES, VOCAB_FILE)


@dataclass(frozen=True)
class LoadedModel:
    model: DoveModel
    vocab: Vocabulary
    params: DoveSettings
    eval_size: int
    preprocess: Preprocessing


def save_model_dir(
    model: DoveModel,
    vocab: Vocabulary,
    eval_size: int,
    target: Path,
    preprocess: Preprocessing,
) -> Path:
    """Write the three files into ``target`` atomically (the old folder is replaced whole)."""
    return write_model_dir(
        target, model, model.params, eval_size, preprocess, lambda tmp: vocab.save(tmp / VOCAB_FILE)
    )


def load_model_dir(model_dir: Path | str, device: str | torch.device = "cpu") -> LoadedModel:
    model_dir = Path(model_dir)
    expect_family(model_dir, DoveSettings().family, "DOVE")
    config = read_model_config(model_dir)
    params = config.params
    assert isinstance(params, DoveSettings)
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
