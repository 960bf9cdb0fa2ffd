"""DOVE's training recipe: ``train_dove(request) -> TrainResult`` (the family's ``train``).

The run's shared services (``training/run.py``) give seeding, resume, the time budget, early
stopping, the history and the result; this module brings DOVE's model, vocabulary, the
frozen-backbone feature cache, the caption batches and validation. Writes ``out_dir/model/``
(the best validation mR, the model-directory contract) and ``checkpoints/last/`` (with the
vocabulary) every epoch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dove_model.allocator import retain_freed_memory_if_enabled
from dove_model.data.manifest import SplitData
from dove_model.errors import ConfigError
from dove_model.families.dove.batches import CaptionBatches
from dove_model.families.dove.feature_cache import cache_key, cached_features, compute_features
from dove_model.families.dove.io import VOCAB_FILE, save_model_dir
from dove_model.families.dove.model import DoveModel
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.step import Optimisation, as_stepped, new_optimiser, train_step
from dove_model.families.dove.text import init_word_embeddings
from dove_model.families.dove.validation import validation_metrics
from dove_model.families.dove.visual import PooledFeatures, load_boxes_file
from dove_model.families.dove.vocab import Vocabulary
from dove_model.model.preprocess import preprocessing_for, train_transform
from dove_model.training.checkpoint import Trainables, checkpoint_dir
from dove_model.training.run import (
    EpochStats,
    TrainingRun,
    TrainRequest,
    TrainResult,
    seed_everything,
    trained_model_dir,
)
from dove_model.training.sampling import epoch_batches


def _boxes_id(params: DoveSettings) -> str:
    if params.boxes_file:
        digest = hashlib.sha256(Path(params.boxes_file).read_bytes()).hexdigest()
        return f"file:{digest}:{params.region_level}"
    return f"grid:{params.region_grids}:{params.region_level}"


class DoveTrainer:
    """DOVE's part of a run: its model and vocabulary (from the checkpoint when resuming)."""

    def __init__(self, run: TrainingRun, settings: DoveSettings) -> None:
        self.run = run
        self.settings = settings
        self.profile = run.profile
        if settings.boxes_file and not (settings.freeze_backbone and self.profile.feature_cache):
            raise ConfigError(
                f"model.boxes_file ({settings.boxes_file}) needs freeze_backbone and the feature"
                " cache: detector boxes do not follow the random rotation/crop of raw-image "
                "training"
            )
        self.resuming = run.resumable(settings)
        if self.resuming:
            self.vocab = Vocabulary.load(checkpoint_dir(run.out_dir) / VOCAB_FILE)
        else:
            split = run.train_split
            self.vocab = Vocabulary.build(split.captions, settings.vocab_min_freq, settings.max_len)
        seed_everything(run.seed)
        self.model = DoveModel(settings, len(self.vocab)).to(run.device)
        if self.profile.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.preprocess = preprocessing_for(settings.backbone)
        if settings.glove_path and not self.resuming:  # resumed weights come from the checkpoint
            init_word_embeddings(self.model.text, self.vocab.word2idx, settings.glove_path)

    # ----------------------------------------------------------------- features
    def _compute(self, split: SplitData, name: str) -> PooledFeatures:
        boxes = self.settings.boxes_file
        return compute_features(
            self.model.backbone,
            split.image_paths,
            self.profile.eval_size,
            self.preprocess,
            self.run.device,
            num_workers=self.profile.num_workers,
            boxes=load_boxes_file(boxes, split.image_ids) if boxes else None,
            desc=f"{name} features",
            progress=self.run.show_progress,
        )

    def features(self, split: SplitData, name: str, use_disk: bool) -> PooledFeatures:
        """Backbone features of a split (eval transform), through the disk cache if asked."""
        if not use_disk:
            return self._compute(split, name)
        key = cache_key(
            split,
            self.settings.backbone,
            self.model.backbone,
            self.profile.eval_size,
            self.preprocess,
            _boxes_id(self.settings),
        )
        cache_dir = Path(self.run.params.train.cache_dir)
        features, hit = self.run.main_first(
            lambda: cached_features(cache_dir, key, lambda: self._compute(split, name))
        )
        if self.run.show_progress:
            tqdm.write(f"{name} features: {'cache hit' if hit else 'computed and cached'} ({key})")
        return features

    def split_features(self) -> tuple[PooledFeatures | None, PooledFeatures | None]:
        """Frozen backbone: train features from the cache (if on), val features computed once."""
        cache, frozen = self.profile.feature_cache, self.settings.freeze_backbone
        run = self.run
        train = self.features(run.train_split, "train", True) if frozen and cache else None
        val = self.features(run.val_split, "val", cache) if frozen else None
        return train, val

    # --------------------------------------------------------------- training
    def optimisation(self) -> Optimisation:
        """Optimiser and schedule (restored from the checkpoint when resuming), then the
        model as stepped."""
        run = self.run
        steps = len(epoch_batches(run.train_split.n_captions, self.profile.batch_size, run.seed, 1))
        optimiser, scheduler = new_optimiser(self.model, self.profile, steps)
        if self.resuming:
            run.resume(Trainables(self.model, optimiser, scheduler))
        return as_stepped(self.model, (optimiser, scheduler), self.profile, run.dist, run.device)

    def dataset(self, features: PooledFeatures | None) -> CaptionBatches:
        split, profile = self.run.train_split, self.profile
        return CaptionBatches(
            captions=split.captions,
            caption_image=split.caption_image,
            vocab=self.vocab,
            image_paths=split.image_paths,
            transform=train_transform(
                profile.resize, profile.crop, profile.rotation_degrees, self.preprocess
            ),
            features=features,
        )

    def train_epoch(self, epoch: int, dataset: CaptionBatches, opt: Optimisation) -> EpochStats:
        """One pass over this rank's batches; stops early when the time budget runs out."""
        run, profile = self.run, self.profile
        batches = epoch_batches(
            run.train_split.n_captions,
            profile.batch_size,
            run.seed,
            epoch,
            run.dist.rank,
            run.dist.world_size,
        )
        loader = DataLoader(
            dataset, batch_size=None, sampler=batches, num_workers=profile.num_workers
        )
        self.model.train()
        done = EpochStats(epoch)
        bar = tqdm(
            loader, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not run.show_progress
        )
        for batch in run.timed_steps(done, bar):
            where = (run.params.train.profile, epoch, done.steps + 1)
            loss = train_step(opt, batch, profile, run.device, where)
            done.add_step(loss, len(batch["ids"]) * run.dist.world_size)
            bar.set_postfix(loss=f"{done.mean_loss:.3f}")
        return done

    def validate(self, val_features: PooledFeatures | None) -> dict[str, float]:
        """Validation metrics (rank 0)."""
        split = self.run.val_split
        features = val_features if val_features is not None else self._compute(split, "val")
        return validation_metrics(
            self.model,
            features,
            split.captions,
            split.caption_image,
            self.vocab,
            self.run.device,
            self.run.params.evaluate.chunk_size,
        )

    def save_best(self) -> None:
        target = trained_model_dir(self.run.out_dir)
        save_model_dir(self.model, self.vocab, self.profile.eval_size, target, self.preprocess)

    def save_last(self, opt: Optimisation) -> None:
        self.run.checkpoint(
            opt.trainables(self.model), self.settings, lambda tmp: self.vocab.save(tmp / VOCAB_FILE)
        )


def train_dove(request: TrainRequest) -> TrainResult:
    """Train DOVE on ``request.dataset_dir``'s train split, select by ``train.val_split`` mR."""
    retain_freed_memory_if_enabled()
    settings = request.settings
    assert isinstance(settings, DoveSettings)
    run = TrainingRun(request)
    trainer = DoveTrainer(run, settings)
    train_features, val_features = trainer.split_features()
    opt = trainer.optimisation()
    dataset = trainer.dataset(train_features)
    stop_reason = run.run_epochs(
        lambda epoch: trainer.train_epoch(epoch, dataset, opt),
        lambda: trainer.validate(val_features),
        lambda: opt.lr,
        trainer.save_best,
        lambda: trainer.save_last(opt),
    )
    return run.finish(stop_reason, trainer.model)
