"""Per-epoch training checkpoint: safetensors weights + optimizer/scheduler/loop state.

Layout ``<out_dir>/checkpoints/last/``: ``weights.safetensors``, ``trainer.pt`` (optimizer,
scheduler, epoch, history; loaded with ``weights_only=True``), ``vocab.json``, ``meta.json``
(the model config and dataset version it belongs to). A checkpoint that belongs to another
model config or dataset is refused with a message naming the difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from dove_model.atomic import atomic_dir
from dove_model.config import ModelParams
from dove_model.errors import ConfigError
from dove_model.model.dove import DoveModel
from dove_model.model.io import load_weights, state_for_saving
from dove_model.model.vocab import Vocabulary

CHECKPOINT_DIR = "checkpoints/last"
WEIGHTS_FILE = "weights.safetensors"
TRAINER_FILE = "trainer.pt"
VOCAB_FILE = "vocab.json"
META_FILE = "meta.json"


@dataclass
class LoopState:
    """Everything besides weights and optimizer that an exact resume needs."""

    epoch: int = 0  # epochs completed
    best_mr: float = -1.0
    best_epoch: int = 0
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(
    out_dir: Path,
    model: DoveModel,
    vocab: Vocabulary,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loop: LoopState,
    dataset_version: str,
) -> Path:
    meta = {"model": model.params.model_dump(mode="json"), "dataset_version": dataset_version}
    with atomic_dir(out_dir / CHECKPOINT_DIR) as tmp:
        save_file(state_for_saving(model), str(tmp / WEIGHTS_FILE))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "loop": loop.__dict__,
            },
            tmp / TRAINER_FILE,
        )
        vocab.save(tmp / VOCAB_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out_dir / CHECKPOINT_DIR


def checkpoint_exists(out_dir: Path) -> bool:
    return (out_dir / CHECKPOINT_DIR / META_FILE).is_file()


def check_compatible(out_dir: Path, params: ModelParams, dataset_version: str) -> None:
    """Raise ConfigError naming the first model field (or the dataset) that differs. A field
    the checkpoint does not record was added after it was written: it trained with the
    field's default, so that is what it is compared as."""
    path = out_dir / CHECKPOINT_DIR / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable checkpoint metadata ({exc})") from None
    defaults = ModelParams().model_dump(mode="json")
    saved = {**defaults, **meta.get("model", {})}
    current = params.model_dump(mode="json")
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise ConfigError(
                f"{path}: checkpoint was trained with model.{key}={saved.get(key)!r}, the "
                f"parameters say {current.get(key)!r}; use another out_dir or --fresh"
            )
    if meta.get("dataset_version") != dataset_version:
        raise ConfigError(
            f"{path}: checkpoint belongs to another dataset version; use another out_dir or --fresh"
        )


def load_checkpoint(
    out_dir: Path,
    model: DoveModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> LoopState:
    folder = out_dir / CHECKPOINT_DIR
    load_weights(model, folder / WEIGHTS_FILE, f"{folder / META_FILE}")
    state = torch.load(folder / TRAINER_FILE, map_location="cpu", weights_only=True)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (KeyError, ValueError) as exc:  # written by a version with another optimiser layout
        raise ConfigError(
            f"{folder / TRAINER_FILE}: the optimiser state does not fit this version's "
            f"optimiser and schedule ({type(exc).__name__}: {exc}); start over with --fresh"
        ) from None
    return LoopState(**state["loop"])


def load_checkpoint_vocab(out_dir: Path) -> Vocabulary:
    return Vocabulary.load(out_dir / CHECKPOINT_DIR / VOCAB_FILE)
