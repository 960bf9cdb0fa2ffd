"""The dual family's training (its ``train``; the shared run: ``training/run.py``).

``feature_cache: true`` (the ``dual-cpu`` profile): the pretrained towers stay frozen, each
split goes through them once (cached on disk under ``train.cache_dir``, keyed by the images'
content, the captions, both towers' weights, the size and the preprocessing), and only the
projection heads train (``fit.HeadsFit``). ``feature_cache: false`` (``dual-gpu``): both
towers are fine-tuned with the heads (``finetune.TowerFinetune``). Either way the epoch with
the best ``train.val_split`` mR is written as a dual model directory, with resume, the time
budget, early stopping and data parallelism under torchrun as for every family.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from dove_model.allocator import retain_freed_memory_if_enabled
from dove_model.atomic import atomic_path
from dove_model.config import Params
from dove_model.data.manifest import SplitData
from dove_model.errors import ConfigError
from dove_model.families.dual.fit import (
    DualRecipe,
    HeadsFit,
    TowerFeatures,
    encode_split,
    load_features,
    save_features,
)
from dove_model.families.dual.io import save_dual_model_dir
from dove_model.families.dual.model import DualModel, assemble, build_towers
from dove_model.families.dual.settings import DualSettings
from dove_model.model.preprocess import Preprocessing
from dove_model.training.checkpoint import Trainables
from dove_model.training.distributed import average_gradients
from dove_model.training.finetune import TowerFinetune
from dove_model.training.fingerprints import split_digest, weights_digest
from dove_model.training.run import (
    EpochStats,
    TrainingRun,
    TrainRequest,
    TrainResult,
    trained_model_dir,
)
from dove_model.training.sampling import epoch_batches

FEATURES_FORMAT = 2  # 2: every dihedral view of each image (model/views.py)


def features_key(
    split: SplitData, model: DualModel, size: int, prep: Preprocessing, params_id: str
) -> str:
    parts = {
        "format": FEATURES_FORMAT,
        "images": split_digest(split),
        "captions": hashlib.sha256("\n".join(split.captions).encode()).hexdigest(),
        "towers": params_id,
        "image_weights": weights_digest(model.image_tower),
        "text_weights": weights_digest(model.text_tower),
        "size": size,
        "preprocess": prep.to_json(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def tower_features(
    split: SplitData,
    model: DualModel,
    size: int,
    prep: Preprocessing,
    cache_dir: Path,
    progress: bool,
) -> TowerFeatures:
    """The split through the frozen towers, from the cache when the same key is there."""
    mp = model.params
    towers_id = (
        f"{mp.text_tower}:{mp.backbone}:{mp.clip_arch}:{mp.text_tune_layers}"
        f":{mp.tta_rotations}:{mp.tta_mirror}:{mp.text_depth}:{mp.image_pool}"
    )
    path = cache_dir / f"dual-{features_key(split, model, size, prep, towers_id)}.pt"
    if path.is_file():
        try:
            return load_features(path)
        except Exception:  # a corrupt entry is recomputed, never trusted
            path.unlink(missing_ok=True)
    features = encode_split(
        split,
        model.image_tower,
        model.text_tower,
        size=size,
        prep=prep,
        progress=progress,
        text_layers=mp.text_tune_layers,
        rotations=mp.tta_rotations,
        mirror=mp.tta_mirror,
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_features(features, tmp)
    return features


class CachedHeads:
    """The ``dual-cpu`` recipe driven by the run: both splits through the frozen towers once
    (cached on disk, rank 0 first), then the heads train on the cached features,
    data-parallel under torchrun (each rank a share of every batch, gradients averaged)."""

    def __init__(self, run: TrainingRun, model: DualModel, size: int, prep: Preprocessing) -> None:
        self.run = run
        cache_dir = Path(run.params.train.cache_dir)

        def features(split: SplitData) -> TowerFeatures:
            return tower_features(split, model, size, prep, cache_dir, run.show_progress)

        self.train_features = run.main_first(lambda: features(run.train_split))
        self.val_features = run.main_first(lambda: features(run.val_split))
        mp = model.params
        text_top = model.text_tower.top(mp.text_tune_layers) if mp.text_tune_layers else None
        self.fit = HeadsFit(self.train_features, recipe_for(run.params), text_top)
        model.heads = self.fit.heads
        self.trained: nn.Module = self.fit.trained
        self.optimiser, self.schedule = self.fit.optimiser, self.fit.schedule
        self.planned_steps = self.schedule.total_steps

    def check_resumed(self) -> None:
        """The one-cycle schedule spans the whole run: a checkpoint planned for another
        length (epochs, batch size) cannot go on under these parameters."""
        restored = self.schedule.total_steps
        if restored != self.planned_steps:
            raise ConfigError(
                f"{self.run.out_dir}: the checkpoint's one-cycle schedule was planned for "
                f"{restored} steps, these parameters plan {self.planned_steps} (epochs or "
                "batch_size changed); use another out_dir or --fresh"
            )

    @property
    def lr(self) -> float:
        return self.fit.lr

    def train_epoch(self, epoch: int) -> EpochStats:
        """One pass over this rank's share of the captions; stops when time runs out."""
        run, fit = self.run, self.fit
        n, size = len(self.train_features.texts), fit.recipe.batch_size
        batches = epoch_batches(
            n, size, run.seed, epoch, run.dist.rank, run.dist.world_size, keep_tail=True
        )
        fit.train_mode()
        done = EpochStats(epoch)
        for batch in run.timed_steps(done, batches):
            loss = fit.train_step(torch.as_tensor(batch))
            average_gradients(run.dist, fit.trained.parameters())
            fit.update()
            done.add_step(loss, len(batch) * run.dist.world_size)
        return done

    def val_metrics(self) -> dict[str, float]:
        return self.fit.val_metrics(self.val_features)


def train_dual(request: TrainRequest) -> TrainResult:
    """Train a dual model (the family's ``train``): the cached-heads recipe with
    ``feature_cache: true``, both towers fine-tuned without; the shared run gives resume,
    the time budget, early stopping, the history and the best epoch's model directory."""
    retain_freed_memory_if_enabled()
    settings = request.settings
    assert isinstance(settings, DualSettings)
    run = TrainingRun(request)
    image_tower, text_tower = build_towers(settings, pretrained=True)
    model = assemble(settings, image_tower, text_tower, heads=None)
    prep, size = tower_input(model, run.profile.eval_size)
    recipe: CachedHeads | TowerFinetune = (
        CachedHeads(run, model, size, prep)
        if run.profile.feature_cache
        else TowerFinetune(run, model, (size, prep), fixed_input=_fixed_input(model))
    )
    trainables = Trainables(recipe.trained, recipe.optimiser, recipe.schedule)
    if run.resumable(settings):
        run.resume(trainables)
        if isinstance(recipe, CachedHeads):
            recipe.check_resumed()
    target = trained_model_dir(run.out_dir)
    stop_reason = run.run_epochs(
        recipe.train_epoch,
        recipe.val_metrics,
        lambda: recipe.lr,
        save_best=lambda: save_dual_model_dir(model, size, target, prep),
        save_last=lambda: run.checkpoint(trainables, settings),
    )
    return run.finish(stop_reason, recipe.trained)


def recipe_for(params: Params) -> DualRecipe:
    """The heads' recipe of the active profile (``dual-cpu``)."""
    profile, model_params = params.train.active, params.model_for_training()
    return DualRecipe(
        embed_dim=model_params.embed_dim,
        hidden=model_params.projection_hidden,
        dropout=model_params.projection_dropout,
        epochs=profile.epochs,
        lr=profile.lr,
        weight_decay=profile.weight_decay,
        batch_size=profile.batch_size,
        seed=params.train.seed,
        text_lr=profile.backbone_lr if profile.backbone_lr is not None else DualRecipe.text_lr,
    )


def _fixed_input(model: DualModel) -> bool:
    """An open_clip image tower takes only its own input size (a ViT)."""
    return getattr(model.image_tower, "input", None) is not None


def tower_input(model: DualModel, eval_size: int) -> tuple[Preprocessing, int]:
    """Preprocessing and input size: an open_clip tower fixes both; a timm one gives its
    normalisation and takes the profile's ``eval_size``."""
    fixed = getattr(model.image_tower, "input", None)
    if fixed is not None:
        return fixed
    from dove_model.model.preprocess import preprocessing_for

    return preprocessing_for(model.params.backbone), eval_size
