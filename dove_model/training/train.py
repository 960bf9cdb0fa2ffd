"""The train stage: ``train(dataset_dir, params, out_dir) -> TrainResult``.

Writes ``out_dir/model/`` (best validation mR, the model-directory contract),
``out_dir/history.json`` and ``out_dir/checkpoints/last/`` (every epoch; resumed exactly).
Reproducible: the model is initialised from ``train.seed`` and each epoch reseeds from
(seed, epoch), so a run resumed after a kill ends with the same weights as one never stopped.
Runs as one process or under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from dove_model.allocator import retain_freed_memory_if_enabled
from dove_model.atomic import write_text
from dove_model.config import ModelParams, Params, TrainProfile
from dove_model.data.manifest import SplitData, load_split
from dove_model.device import resolve_device
from dove_model.errors import ConfigError, DoveError
from dove_model.evaluation.metrics import random_chance_metrics
from dove_model.model.dove import DoveModel
from dove_model.model.io import save_model_dir
from dove_model.model.preprocess import preprocessing_for, train_transform
from dove_model.model.text import init_word_embeddings
from dove_model.model.visual import PooledFeatures, load_boxes_file
from dove_model.model.vocab import Vocabulary
from dove_model.training.batches import CaptionBatches, epoch_batches
from dove_model.training.checkpoint import (
    LoopState,
    check_compatible,
    checkpoint_exists,
    load_checkpoint,
    load_checkpoint_vocab,
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
from dove_model.training.feature_cache import (
    cache_key,
    cached_features,
    compute_features,
    split_digest,
    weights_digest,
)
from dove_model.training.schedule import build_optimizer
from dove_model.training.validation import validation_metrics

MODEL_SUBDIR = "model"
HISTORY_FILE = "history.json"


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class _Optimisation:
    """What a train step needs: the model as stepped (DDP-wrapped, compiled), the trainable
    parameters (for clipping), the optimiser and its per-step schedule."""

    step_model: torch.nn.Module
    trainable: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


@dataclass
class _EpochDone:
    """What one epoch's training pass did (validation comes after it)."""

    epoch: int
    started: float  # time.monotonic() at its start
    loss_sum: float = 0.0
    steps: int = 0
    samples: int = 0  # over all ranks
    train_seconds: float = 0.0
    out_of_time: bool = False

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.steps, 1)


def _boxes_id(params: ModelParams) -> str:
    if params.boxes_file:
        digest = hashlib.sha256(Path(params.boxes_file).read_bytes()).hexdigest()
        return f"file:{digest}:{params.region_level}"
    return f"grid:{params.region_grids}:{params.region_level}"


class _Run:
    """One training run's state; ``train`` below is the public entry point."""

    def __init__(
        self,
        dataset_dir: Path,
        params: Params,
        out_dir: Path,
        resume: bool,
        progress: bool,
    ) -> None:
        self.params = params
        self.profile: TrainProfile = params.train.active
        self.model_params = params.model_for_training()
        self.out_dir = out_dir
        self.progress = progress
        self.device = resolve_device(params.train.device)
        self.dist: DistInfo = init_distributed(self.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.seed = params.train.seed
        self.train_split = load_split(dataset_dir, "train")
        self.val_split = load_split(dataset_dir, params.train.val_split)
        self.dataset_version = hashlib.sha256(
            (split_digest(self.train_split) + split_digest(self.val_split)).encode()
        ).hexdigest()
        mp = self.model_params
        if mp.boxes_file and not (mp.freeze_backbone and self.profile.feature_cache):
            raise ConfigError(
                f"model.boxes_file ({mp.boxes_file}) needs freeze_backbone and the feature cache:"
                " detector boxes do not follow the random rotation/crop of raw-image training"
            )
        self.resuming = resume and checkpoint_exists(out_dir)
        if self.resuming:
            check_compatible(out_dir, mp, self.dataset_version)
            self.vocab = load_checkpoint_vocab(out_dir)
        else:
            self.vocab = Vocabulary.build(self.train_split.captions, mp.vocab_min_freq, mp.max_len)
        seed_everything(self.seed)
        self.model = DoveModel(mp, len(self.vocab)).to(self.device)
        if self.profile.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.preprocess = preprocessing_for(mp.backbone)
        if mp.glove_path and not self.resuming:  # a resumed run's weights come from the checkpoint
            init_word_embeddings(self.model.text, self.vocab.word2idx, mp.glove_path)
        self.cache_dir = Path(params.train.cache_dir)

    # ----------------------------------------------------------------- features
    def _boxes(self, split: SplitData) -> torch.Tensor | None:
        if not self.model_params.boxes_file:
            return None
        return load_boxes_file(self.model_params.boxes_file, split.image_ids)

    def _compute(self, split: SplitData, name: str) -> PooledFeatures:
        return compute_features(
            self.model.backbone,
            split.image_paths,
            self.profile.eval_size,
            self.preprocess,
            self.device,
            num_workers=self.profile.num_workers,
            boxes=self._boxes(split),
            desc=f"{name} features",
            progress=self.progress and self.dist.is_main,
        )

    def features(self, split: SplitData, name: str, use_disk: bool) -> PooledFeatures:
        """Backbone features of a split (eval transform), through the disk cache if asked."""
        if not use_disk:
            return self._compute(split, name)
        key = cache_key(
            split,
            self.model_params.backbone,
            self.model.backbone,
            self.profile.eval_size,
            self.preprocess,
            _boxes_id(self.model_params),
        )
        if self.dist.enabled and not self.dist.is_main:
            barrier(self.dist)  # rank 0 fills the cache first
        features, hit = cached_features(self.cache_dir, key, lambda: self._compute(split, name))
        if self.dist.enabled and self.dist.is_main:
            barrier(self.dist)
        if self.progress and self.dist.is_main:
            tqdm.write(f"{name} features: {'cache hit' if hit else 'computed and cached'} ({key})")
        return features

    # --------------------------------------------------------------------- loop
    def run(self, on_epoch_end: Callable[[dict[str, Any]], None] | None) -> TrainResult:
        """Features, optimiser (resumed), then epochs until the last, early stop or time out."""
        train_features, val_features = self._split_features()
        opt, loop = self._optimisation()
        dataset = self._train_dataset(train_features)
        chance = random_chance_metrics(self.val_split.caption_image, self.val_split.n_images)
        started = time.monotonic()
        stop_reason = "epochs"
        train_seconds, train_samples = 0.0, 0
        epochs = tqdm(
            range(loop.epoch + 1, self.profile.epochs + 1),
            desc="epochs",
            unit="epoch",
            disable=not (self.progress and self.dist.is_main),
        )
        for epoch in epochs:
            done = self._train_epoch(epoch, dataset, opt, started)
            train_seconds += done.train_seconds
            train_samples += done.samples
            stop = self._end_epoch(done, loop, opt, val_features, chance, on_epoch_end)
            if stop is not None:
                stop_reason = stop
                break
        return self._finish(loop, chance, stop_reason, train_samples, train_seconds)

    def _split_features(self) -> tuple[PooledFeatures | None, PooledFeatures | None]:
        """Frozen backbone: train features from the cache (if on), val features computed once."""
        profile, frozen = self.profile, self.model_params.freeze_backbone
        use_cache = frozen and profile.feature_cache
        train_features = self.features(self.train_split, "train", True) if use_cache else None
        val_features = (
            self.features(self.val_split, "val", profile.feature_cache) if frozen else None
        )
        return train_features, val_features

    def _optimisation(self) -> tuple[_Optimisation, LoopState]:
        """Optimiser and schedule (restored from the checkpoint when resuming), then the model
        as stepped: DDP-wrapped after the restore (DDP broadcasts rank 0's weights), compiled
        if asked."""
        profile = self.profile
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        steps_per_epoch = len(
            epoch_batches(self.train_split.n_captions, profile.batch_size, self.seed, 1)
        )
        optimizer, scheduler = build_optimizer(self.model, profile, steps_per_epoch)
        loop = LoopState()
        if self.resuming:
            loop = load_checkpoint(self.out_dir, self.model, optimizer, scheduler)
            if self.progress and self.dist.is_main:
                tqdm.write(f"resuming after epoch {loop.epoch} from {self.out_dir}")
        step_model: torch.nn.Module = self.model
        if self.dist.enabled:
            step_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if profile.compile:
            step_model = torch.compile(step_model)  # type: ignore[assignment]
        return _Optimisation(step_model, trainable, optimizer, scheduler), loop

    def _train_dataset(self, features: PooledFeatures | None) -> CaptionBatches:
        profile = self.profile
        return CaptionBatches(
            captions=self.train_split.captions,
            caption_image=self.train_split.caption_image,
            vocab=self.vocab,
            image_paths=self.train_split.image_paths,
            transform=train_transform(
                profile.resize, profile.crop, profile.rotation_degrees, self.preprocess
            ),
            features=features,
        )

    def _train_step(
        self, opt: _Optimisation, batch: dict[str, torch.Tensor], epoch: int, step: int
    ) -> float:
        """Forward, NaN guard, backward, clip, optimiser and schedule step; returns the loss."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.profile.channels_last and "images" in batch:
            batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
        amp = self.profile.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = opt.step_model(**batch)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"training loss became {loss.item()} at epoch {epoch}, step {step} "
                f"(lr {opt.scheduler.get_last_lr()[0]:g}); lower "
                f"train.profiles.{self.params.train.profile}.lr or set grad_clip"
            )
        opt.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.profile.grad_clip:
            torch.nn.utils.clip_grad_norm_(opt.trainable, self.profile.grad_clip)
        opt.optimizer.step()
        opt.scheduler.step()
        return float(loss.item())

    def _train_epoch(
        self, epoch: int, dataset: CaptionBatches, opt: _Optimisation, started: float
    ) -> _EpochDone:
        """One pass over this rank's batches; stops early when the time budget runs out."""
        torch.manual_seed(self.seed * 1_000_003 + epoch)  # augmentation + worker seeds
        batches = epoch_batches(
            self.train_split.n_captions,
            self.profile.batch_size,
            self.seed,
            epoch,
            self.dist.rank,
            self.dist.world_size,
        )
        loader = DataLoader(
            dataset, batch_size=None, sampler=batches, num_workers=self.profile.num_workers
        )
        self.model.train()
        done = _EpochDone(epoch=epoch, started=time.monotonic())
        bar = tqdm(
            loader,
            desc=f"epoch {epoch}",
            unit="batch",
            leave=False,
            disable=not (self.progress and self.dist.is_main),
        )
        for batch in bar:
            done.loss_sum += self._train_step(opt, batch, epoch, done.steps + 1)
            done.steps += 1
            done.samples += len(batch["ids"]) * self.dist.world_size
            bar.set_postfix(loss=f"{done.mean_loss:.3f}")
            if self._out_of_time(started):
                done.out_of_time = True
                break
        done.train_seconds = time.monotonic() - done.started
        return done

    def _out_of_time(self, started: float) -> bool:
        """``max_minutes`` is over on any rank (so that every rank stops at the same step)."""
        if self.profile.max_minutes is None:
            return False
        over = time.monotonic() - started > self.profile.max_minutes * 60
        return any_rank(self.dist, over)

    def _end_epoch(
        self,
        done: _EpochDone,
        loop: LoopState,
        opt: _Optimisation,
        val_features: PooledFeatures | None,
        chance: dict[str, float],
        on_epoch_end: Callable[[dict[str, Any]], None] | None,
    ) -> str | None:
        """Validate, keep the best model, checkpoint, report; the stop reason, if any."""
        metrics = self._validate(val_features)
        record = {
            "epoch": done.epoch,
            "loss": done.mean_loss,
            "lr": opt.optimizer.param_groups[0]["lr"],
            "steps": done.steps,
            "seconds": round(time.monotonic() - done.started, 2),
            "val": metrics,
        }
        loop.history.append(record)
        loop.epoch = done.epoch
        if metrics["mR"] > loop.best_mr:
            loop.best_mr, loop.best_epoch, loop.stale_epochs = metrics["mR"], done.epoch, 0
            if self.dist.is_main:
                save_model_dir(
                    self.model,
                    self.vocab,
                    self.profile.eval_size,
                    trained_model_dir(self.out_dir),
                    self.preprocess,
                )
        else:
            loop.stale_epochs += 1
        if self.dist.is_main:
            save_checkpoint(
                self.out_dir,
                self.model,
                self.vocab,
                opt.optimizer,
                opt.scheduler,
                loop,
                self.dataset_version,
            )
            self._write_history(loop, chance)
            if self.progress:
                tqdm.write(_epoch_line(record, self.profile.epochs, chance["mR"]))
            if on_epoch_end is not None:
                on_epoch_end(record)
        barrier(self.dist)
        if done.out_of_time:
            return "time_budget"
        if loop.stale_epochs >= self.profile.early_stopping_patience:
            return "early_stopping"
        return None

    def _finish(
        self,
        loop: LoopState,
        chance: dict[str, float],
        stop_reason: str,
        train_samples: int,
        train_seconds: float,
    ) -> TrainResult:
        """Check the ranks agree, write the final history, describe the run."""
        ddp_checksums = self._check_ranks_agree()
        if self.dist.is_main:
            self._write_history(loop, chance, ddp_checksums)
        best = next((h["val"] for h in loop.history if h["epoch"] == loop.best_epoch), {})
        return TrainResult(
            model_dir=trained_model_dir(self.out_dir),
            history_file=self.out_dir / HISTORY_FILE,
            best_epoch=loop.best_epoch,
            best_metrics=best,
            epochs_run=loop.epoch,
            stop_reason=stop_reason,
            train_samples_per_s=train_samples / train_seconds if train_seconds else 0.0,
            random_chance_mR=chance["mR"],
        )

    def _validate(self, val_features: PooledFeatures | None) -> dict[str, float]:
        metrics = None
        if self.dist.is_main:
            features = (
                val_features if val_features is not None else self._compute(self.val_split, "val")
            )
            metrics = validation_metrics(
                self.model,
                features,
                self.val_split.captions,
                self.val_split.caption_image,
                self.vocab,
                self.device,
                self.params.evaluate.chunk_size,
            )
        return broadcast_object(self.dist, metrics)  # type: ignore[return-value]

    def _check_ranks_agree(self) -> list[str] | None:
        """Under DDP every rank must end with the same weights; a difference is a bug."""
        if not self.dist.enabled:
            return None
        checksums = gather_objects(self.dist, weights_digest(self.model))
        if len(set(checksums)) != 1:
            raise RuntimeError(f"DDP ranks ended with different weights: {checksums}")
        return [str(c) for c in checksums]

    def _write_history(
        self, loop: LoopState, chance: dict[str, float], ddp: list[str] | None = None
    ) -> None:
        payload: dict[str, Any] = {
            "profile": self.params.train.profile,
            "seed": self.seed,
            "best_epoch": loop.best_epoch,
            "best_mR": loop.best_mr,
            "random_chance": chance,
            "epochs": loop.history,
        }
        if ddp is not None:
            payload["ddp"] = {"world_size": self.dist.world_size, "rank_weight_sha256": ddp}
        write_text(self.out_dir / HISTORY_FILE, json.dumps(payload, indent=2))


def _epoch_line(record: dict[str, Any], epochs: int, chance_mr: float) -> str:
    v = record["val"]
    return (
        f"epoch {record['epoch']}/{epochs}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
        f"val i2t R@1/5/10 {v['i2t_r1']:.1f}/{v['i2t_r5']:.1f}/{v['i2t_r10']:.1f}  "
        f"t2i {v['t2i_r1']:.1f}/{v['t2i_r5']:.1f}/{v['t2i_r10']:.1f}  mR {v['mR']:.2f} "
        f"(chance {chance_mr:.2f})  {record['seconds']:.1f}s"
    )


def train(
    dataset_dir: Path | str,
    params: Params,
    out_dir: Path | str,
    *,
    resume: bool = True,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train DOVE (or, with ``model.family: dual``, a dual model: ``dual_train.py``) on
    ``dataset_dir``'s train split, select by ``train.val_split`` mR.

    ``resume``: continue from ``out_dir``'s last checkpoint when one exists (it must belong to
    the same model config and dataset version). ``on_epoch_end`` receives each epoch's record
    on rank 0 (e.g. to log it to MLflow).
    """
    retain_freed_memory_if_enabled()
    if params.model_for_training().family == "dual":
        from dove_model.training.dual_train import train_dual

        return train_dual(
            Path(dataset_dir), params, Path(out_dir), progress=progress, on_epoch_end=on_epoch_end
        )
    run = _Run(Path(dataset_dir), params, Path(out_dir), resume, progress)
    return run.run(on_epoch_end)


@dataclass(frozen=True)
class StepThroughput:
    """The training step's own speed: forward, backward and optimiser, data loading excluded."""

    samples_per_s: float
    steps: int
    batch_size: int
    peak_memory_gib: float | None  # on a GPU: the steps' peak allocation


def step_throughput(
    dataset_dir: Path | str, params: Params, *, steps: int = 20, warmup: int = 3
) -> StepThroughput:
    """Time ``steps`` DOVE training steps of the active profile (after ``warmup`` untimed
    ones) on batches decoded once and kept on the device, so that what is measured is the
    model's step (its precision, its kernels), not the image loader. The weights it updates
    are thrown away."""
    with tempfile.TemporaryDirectory(prefix="dove-steps-") as nowhere:  # nothing is saved
        run = _Run(Path(dataset_dir), params, Path(nowhere), False, False)
    opt, _ = run._optimisation()
    dataset = run._train_dataset(None)
    order = epoch_batches(run.train_split.n_captions, run.profile.batch_size, run.seed, 1)
    if not order:
        raise ConfigError("step_throughput: the train split has fewer captions than one batch")
    batches = [
        {k: v.to(run.device) for k, v in dataset[order[i % len(order)]].items()}
        for i in range(min(len(order), steps + warmup))
    ]
    run.model.train()
    cuda = run.device.type == "cuda"

    def step(i: int) -> None:
        run._train_step(opt, batches[i % len(batches)], 1, i + 1)

    for i in range(warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize(run.device)
        torch.cuda.reset_peak_memory_stats(run.device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    if cuda:
        torch.cuda.synchronize(run.device)
    seconds = time.perf_counter() - start
    samples = sum(len(batches[(warmup + i) % len(batches)]["ids"]) for i in range(steps))
    peak = torch.cuda.max_memory_allocated(run.device) / 2**30 if cuda else None
    return StepThroughput(samples / seconds, steps, run.profile.batch_size, peak)
