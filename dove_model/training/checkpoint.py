"""Per-epoch training checkpoint, the same for every family: safetensors weights of what
trains + optimizer/scheduler/loop state.

Layout ``<out_dir>/checkpoints/last/``: ``weights.safetensors``, ``trainer.pt`` (optimizer,
scheduler, epoch, history; loaded with ``weights_only=True``), ``meta.json`` (the model
settings and dataset version it belongs to) and whatever the family adds (DOVE: its
vocabulary). A checkpoint that belongs to other settings or another dataset is refused with
a message naming the difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic_core import to_jsonable_python
from safetensors.torch import save_file

from dove_model.atomic import atomic_dir
from dove_model.config import FamilySettings
from dove_model.errors import ConfigError
from dove_model.model.directory import load_weights, state_for_saving

CHECKPOINT_DIR = "checkpoints/last"
WEIGHTS_FILE = "weights.safetensors"
TRAINER_FILE = "trainer.pt"
META_FILE = "meta.json"


@dataclass
class LoopState:
    """Everything besides weights and optimizer that an exact resume needs."""

    epoch: int = 0  # epochs completed
    best_mr: float = -1.0
    best_epoch: int = 0
    stale_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Trainables:
    """What a checkpoint holds: the module whose weights train, its optimiser and schedule."""

    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def checkpoint_dir(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR


def save_checkpoint(
    out_dir: Path,
    trainables: Trainables,
    settings: FamilySettings,
    loop: LoopState,
    dataset_version: str,
    extra_files: Callable[[Path], None] | None = None,
) -> Path:
    meta = {"model": settings.model_dump(mode="json"), "dataset_version": dataset_version}
    with atomic_dir(checkpoint_dir(out_dir)) as tmp:
        save_file(state_for_saving(trainables.module), str(tmp / WEIGHTS_FILE))
        torch.save(
            {
                "optimizer": trainables.optimizer.state_dict(),
                "scheduler": trainables.scheduler.state_dict(),
                "loop": loop.__dict__,
            },
            tmp / TRAINER_FILE,
        )
        if extra_files is not None:
            extra_files(tmp)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return checkpoint_dir(out_dir)


def checkpoint_exists(out_dir: Path) -> bool:
    return (checkpoint_dir(out_dir) / META_FILE).is_file()


def check_compatible(out_dir: Path, settings: FamilySettings, dataset_version: str) -> None:
    """Raise ConfigError naming the first model field (or the dataset) that differs. A field
    the checkpoint does not record was added after it was written: it trained with the
    field's default, so that is what it is compared as."""
    path = checkpoint_dir(out_dir) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable checkpoint metadata ({exc})") from None
    current = settings.model_dump(mode="json")
    defaults = {
        name: to_jsonable_python(field.get_default(call_default_factory=True))
        for name, field in type(settings).model_fields.items()
        if not field.is_required()
    }
    recorded = {k: v for k, v in meta.get("model", {}).items() if k in current}
    saved = {**defaults, **recorded}
    for key in sorted(current):
        if saved.get(key) != current.get(key):
            raise ConfigError(
                f"{path}: checkpoint was trained with model.{key}={saved.get(key)!r}, the "
                f"parameters say {current.get(key)!r}; use another out_dir or --fresh"
            )
    if meta.get("dataset_version") != dataset_version:
        raise ConfigError(
            f"{path}: checkpoint belongs to another dataset version; use another out_dir or --fresh"
        )


def load_checkpoint(out_dir: Path, trainables: Trainables) -> LoopState:
    folder = checkpoint_dir(out_dir)
    load_weights(trainables.module, folder / WEIGHTS_FILE, f"{folder / META_FILE}")
    state = torch.load(folder / TRAINER_FILE, map_location="cpu", weights_only=True)
    try:
        trainables.optimizer.load_state_dict(state["optimizer"])
        trainables.scheduler.load_state_dict(state["scheduler"])
    except (KeyError, ValueError) as exc:  # written by a version with another optimiser layout
        raise ConfigError(
            f"{folder / TRAINER_FILE}: the optimiser state does not fit this version's "
            f"optimiser and schedule ({type(exc).__name__}: {exc}); start over with --fresh"
        ) from None
    return LoopState(**state["loop"])
