"""What every family's training gets, owned here and nowhere else.

A family's ``train`` receives a :class:`TrainRequest` and opens a :class:`TrainingRun`: the
process group under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU) and the device, seeding
(``train.seed``; each epoch reseeded from (seed, epoch), so a resumed run ends with the weights
of one never stopped), the train and validation splits, resume from ``checkpoints/last/``, the
time budget (``max_minutes``, agreed over the ranks), best-epoch selection by validation mR,
early stopping (``early_stopping_patience``), ``history.json``, the per-epoch callback (e.g.
MLflow) and the :class:`TrainResult`. The family brings its model, its batches and its step.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from dove_model.atomic import write_text
from dove_model.config import FamilySettings, Params, TrainProfile
from dove_model.data.manifest import load_split
from dove_model.device import resolve_device
from dove_model.errors import DoveError
from dove_model.metrics import random_chance_metrics
from dove_model.training.checkpoint import (
    LoopState,
    Trainables,
    check_compatible,
    checkpoint_exists,
    load_checkpoint,
    save_checkpoint,
)
from dove_model.training.distributed import (
    DistInfo,
    any_rank,
    barrier,
    broadcast_object,
    gather_objects,
    init_distributed,
)
from dove_model.training.fingerprints import split_digest, weights_digest

MODEL_SUBDIR = "model"
HISTORY_FILE = "history.json"
EpochCallback = Callable[[dict[str, Any]], None]
T = TypeVar("T")


def trained_model_dir(out_dir: Path | str) -> Path:
    """The model directory a run in ``out_dir`` writes (its best epoch)."""
    return Path(out_dir) / MODEL_SUBDIR


class TrainingDiverged(DoveError):
    """The loss became NaN or infinite: stop rather than write garbage weights."""


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    history_file: Path
    best_epoch: int
    best_metrics: dict[str, float]
    epochs_run: int
    stop_reason: str  # "epochs" | "early_stopping" | "time_budget"
    train_samples_per_s: float
    random_chance_mR: float


@dataclass(frozen=True)
class TrainRequest:
    """The train stage's arguments, as every family receives them."""

    dataset_dir: Path
    params: Params
    out_dir: Path
    resume: bool = True  # continue from out_dir's last checkpoint when one exists
    progress: bool = True
    on_epoch_end: EpochCallback | None = None  # each epoch's record, on rank 0

    @property
    def settings(self) -> FamilySettings:
        return self.params.model_for_training()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_epoch(seed: int, epoch: int) -> None:
    """The generator state of epoch ``epoch`` (augmentation, sampling, dropout): a function of
    (seed, epoch) alone, which is what makes a resume exact."""
    torch.manual_seed(seed * 1_000_003 + epoch)


@dataclass
class EpochStats:
    """What one epoch's training pass did (validation comes after it)."""

    epoch: int
    started: float = 0.0  # time.monotonic() at its start
    loss_sum: float = 0.0
    steps: int = 0
    samples: int = 0  # over all ranks
    train_seconds: float = 0.0
    out_of_time: bool = False

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.steps, 1)

    def add_step(self, loss: float, samples: int) -> None:
        self.loss_sum += loss
        self.steps += 1
        self.samples += samples


class TrainingRun:
    """One run's shared services; a family's trainer holds one and calls it per epoch."""

    def __init__(self, request: TrainRequest) -> None:
        self.request = request
        self.params = request.params
        self.profile: TrainProfile = request.params.train.active
        self.out_dir = Path(request.out_dir)
        self.seed = request.params.train.seed
        self.device = resolve_device(request.params.train.device)
        self.dist: DistInfo = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.train_split = load_split(request.dataset_dir, "train")
        self.val_split = load_split(request.dataset_dir, request.params.train.val_split)
        self.dataset_version = hashlib.sha256(
            (split_digest(self.train_split) + split_digest(self.val_split)).encode()
        ).hexdigest()
        self.chance = random_chance_metrics(self.val_split.caption_image, self.val_split.n_images)
        self.loop = LoopState()
        self.started = time.monotonic()
        self.train_seconds = 0.0
        self.train_samples = 0
        seed_everything(self.seed)

    # ------------------------------------------------------------------ resume
    @property
    def show_progress(self) -> bool:
        return self.request.progress and self.dist.is_main

    def resumable(self, settings: FamilySettings) -> bool:
        """Whether to resume: asked for and a checkpoint is there, which must then belong to
        these settings and this dataset version (else a ConfigError naming the difference)."""
        if not (self.request.resume and checkpoint_exists(self.out_dir)):
            return False
        check_compatible(self.out_dir, settings, self.dataset_version)
        return True

    def resume(self, trainables: Trainables) -> None:
        self.loop = load_checkpoint(self.out_dir, trainables)
        if self.show_progress:
            tqdm.write(f"resuming after epoch {self.loop.epoch} from {self.out_dir}")

    # ------------------------------------------------------------------- epochs
    def epochs(self) -> Iterable[int]:
        """The epochs still to run (after a resumed checkpoint's), each reseeded."""
        bar = tqdm(
            range(self.loop.epoch + 1, self.profile.epochs + 1),
            desc="epochs",
            unit="epoch",
            disable=not self.show_progress,
        )
        for epoch in bar:
            seed_epoch(self.seed, epoch)
            yield epoch

    def out_of_time(self) -> bool:
        """``max_minutes`` is over on any rank (so that every rank stops at the same step)."""
        if self.profile.max_minutes is None:
            return False
        over = time.monotonic() - self.started > self.profile.max_minutes * 60
        return any_rank(self.dist, over)

    def main_first(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0 first, then on the others (which find its cache filled)."""
        if self.dist.enabled and not self.dist.is_main:
            barrier(self.dist)
        value = compute()
        if self.dist.enabled and self.dist.is_main:
            barrier(self.dist)
        return value

    def timed_steps(self, done: EpochStats, batches: Iterable[T]) -> Iterator[T]:
        """The epoch's batches, one at a time, until the time budget runs out (then
        ``done.out_of_time``); ``done.train_seconds`` is set when the pass ends."""
        for batch in batches:
            yield batch
            if self.out_of_time():
                done.out_of_time = True
                break
        done.train_seconds = time.monotonic() - done.started

    def run_epochs(
        self,
        train_epoch: Callable[[int], EpochStats],
        validate: Callable[[], dict[str, float]],
        lr: Callable[[], float],
        save_best: Callable[[], None],
        save_last: Callable[[], None],
    ) -> str:
        """The epochs still to run: train, validate on rank 0 (agreed by all), record, keep
        the best, checkpoint; the stop reason ("epochs", "early_stopping", "time_budget")."""
        for epoch in self.epochs():
            done = train_epoch(epoch)
            metrics = self.agreed(validate() if self.dist.is_main else None)
            stop = self.end_epoch(done, lr(), metrics, save_best, save_last)
            if stop is not None:
                return stop
        return "epochs"

    def agreed(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (validation runs on rank 0 only)."""
        return broadcast_object(self.dist, value)

    def end_epoch(
        self,
        done: EpochStats,
        lr: float,
        metrics: dict[str, float],
        save_best: Callable[[], None],
        save_last: Callable[[], None],
    ) -> str | None:
        """Record the epoch; on rank 0 keep the best model (``save_best``), checkpoint
        (``save_last``), write the history and call back; the stop reason, if any."""
        self.train_seconds += done.train_seconds
        self.train_samples += done.samples
        record = {
            "epoch": done.epoch,
            "loss": done.mean_loss,
            "lr": lr,
            "steps": done.steps,
            "seconds": round(time.monotonic() - done.started, 2),
            "val": metrics,
        }
        loop = self.loop
        loop.history.append(record)
        loop.epoch = done.epoch
        improved = metrics["mR"] > loop.best_mr
        if improved:
            loop.best_mr, loop.best_epoch, loop.stale_epochs = metrics["mR"], done.epoch, 0
        else:
            loop.stale_epochs += 1
        if self.dist.is_main:
            if improved:
                save_best()
            save_last()
            self.write_history()
            if self.request.progress:
                tqdm.write(epoch_line(record, self.profile.epochs, self.chance["mR"]))
            if self.request.on_epoch_end is not None:
                self.request.on_epoch_end(record)
        barrier(self.dist)
        if done.out_of_time:
            return "time_budget"
        if loop.stale_epochs >= self.profile.early_stopping_patience:
            return "early_stopping"
        return None

    def checkpoint(
        self,
        trainables: Trainables,
        settings: FamilySettings,
        extra_files: Callable[[Path], None] | None = None,
    ) -> None:
        save_checkpoint(
            self.out_dir, trainables, settings, self.loop, self.dataset_version, extra_files
        )

    # ------------------------------------------------------------------- finish
    def finish(self, stop_reason: str, trained: torch.nn.Module) -> TrainResult:
        """Check the ranks agree on ``trained``'s weights, write the final history, describe
        the run."""
        ddp_checksums = self._check_ranks_agree(trained)
        if self.dist.is_main:
            self.write_history(ddp_checksums)
        loop = self.loop
        best = next((h["val"] for h in loop.history if h["epoch"] == loop.best_epoch), {})
        seconds = self.train_seconds
        return TrainResult(
            model_dir=trained_model_dir(self.out_dir),
            history_file=self.out_dir / HISTORY_FILE,
            best_epoch=loop.best_epoch,
            best_metrics=best,
            epochs_run=loop.epoch,
            stop_reason=stop_reason,
            train_samples_per_s=self.train_samples / seconds if seconds else 0.0,
            random_chance_mR=self.chance["mR"],
        )

    def _check_ranks_agree(self, trained: torch.nn.Module) -> list[str] | None:
        """Under DDP every rank must end with the same weights; a difference is a bug."""
        if not self.dist.enabled:
            return None
        checksums = gather_objects(self.dist, weights_digest(trained))
        if len(set(checksums)) != 1:
            raise RuntimeError(f"DDP ranks ended with different weights: {checksums}")
        return [str(c) for c in checksums]

    def write_history(self, ddp: list[str] | None = None) -> None:
        payload: dict[str, Any] = {
            "family": self.request.settings.family,
            "profile": self.params.train.profile,
            "seed": self.seed,
            "best_epoch": self.loop.best_epoch,
            "best_mR": self.loop.best_mr,
            "random_chance": self.chance,
            "epochs": self.loop.history,
        }
        if ddp is not None:
            payload["ddp"] = {"world_size": self.dist.world_size, "rank_weight_sha256": ddp}
        write_text(self.out_dir / HISTORY_FILE, json.dumps(payload, indent=2))


def epoch_line(record: dict[str, Any], epochs: int, chance_mr: float) -> str:
    v = record["val"]
    return (
        f"epoch {record['epoch']}/{epochs}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
        f"val i2t R@1/5/10 {v['i2t_r1']:.1f}/{v['i2t_r5']:.1f}/{v['i2t_r10']:.1f}  "
        f"t2i {v['t2i_r1']:.1f}/{v['t2i_r5']:.1f}/{v['t2i_r10']:.1f}  mR {v['mR']:.2f} "
        f"(chance {chance_mr:.2f})  {record['seconds']:.1f}s"
    )
