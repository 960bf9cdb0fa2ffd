"""The train stage for ``model.family: dual`` (``train.train`` dispatches here).

``feature_cache: true`` (the ``dual-cpu`` profile): the pretrained towers stay frozen, each
split goes through them once (cached on disk under ``train.cache_dir``, keyed by the images'
content, the captions, both towers' weights, the size and the preprocessing), and only the
projection heads train (``dual_fit.fit_heads``). ``feature_cache: false`` (``dual-gpu``):
both towers are fine-tuned with the heads (``dual_finetune.py``). Either way the epoch with
the best ``train.val_split`` mR is kept and written as a dual model directory, with the same
``history.json`` and ``TrainResult`` as DOVE's stage.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dove_model.atomic import atomic_path, write_text
from dove_model.config import Params
from dove_model.data.manifest import SplitData, load_split
from dove_model.evaluation.metrics import random_chance_metrics
from dove_model.model.dual import DualModel, assemble, build_towers
from dove_model.model.dual_io import save_dual_model_dir
from dove_model.model.preprocess import Preprocessing
from dove_model.training.dual_finetune import FinetuneResult
from dove_model.training.dual_fit import (
    DualRecipe,
    TowerFeatures,
    encode_split,
    fit_heads,
    load_features,
    save_features,
)
from dove_model.training.feature_cache import split_digest, weights_digest

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


def train_dual(
    dataset_dir: Path,
    params: Params,
    out_dir: Path,
    *,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Train a dual model; returns ``train.TrainResult``."""
    from dove_model.training.train import (
        HISTORY_FILE,
        TrainResult,
        seed_everything,
        trained_model_dir,
    )

    model_params = params.model_for_training()
    profile = params.train.active
    seed_everything(params.train.seed)
    image_tower, text_tower = build_towers(model_params, pretrained=True)
    model = assemble(model_params, image_tower, text_tower, heads=None)
    prep, size = tower_input(model, profile.eval_size)
    train_split = load_split(dataset_dir, "train")
    val_split = load_split(dataset_dir, params.train.val_split)
    chance = random_chance_metrics(val_split.caption_image, val_split.n_images)
    started = time.monotonic()
    if profile.feature_cache:
        fitted = _fit_on_cached_features(
            model, train_split, val_split, params, (size, prep), progress, on_epoch_end
        )
    else:
        from dove_model.training.dual_finetune import finetune

        fitted = finetune(model, train_split, val_split, params, size, prep, progress, on_epoch_end)
    history, best_epoch = fitted.history, fitted.best_epoch
    model_dir = save_dual_model_dir(model, size, trained_model_dir(out_dir), prep)
    best = next((h["val"] for h in history if h["epoch"] == best_epoch), {})
    payload = {
        "family": "dual",
        "profile": params.train.profile,
        "seed": params.train.seed,
        "best_epoch": best_epoch,
        "best_mR": best.get("mR"),
        "random_chance": chance,
        "seconds": round(time.monotonic() - started, 2),
        "epochs": history,
    }
    write_text(out_dir / HISTORY_FILE, json.dumps(payload, indent=2))
    if progress:
        tqdm.write(
            f"dual: best epoch {best_epoch} of {len(history)}, val mR {best.get('mR', 0):.2f} "
            f"(chance {chance['mR']:.2f})"
        )
    return TrainResult(
        model_dir=model_dir,
        history_file=out_dir / HISTORY_FILE,
        best_epoch=best_epoch,
        best_metrics=best,
        epochs_run=len(history),
        stop_reason="epochs",
        train_samples_per_s=fitted.samples / fitted.train_seconds if fitted.train_seconds else 0.0,
        random_chance_mR=chance["mR"],
    )


def _fit_on_cached_features(
    model: DualModel,
    train_split: SplitData,
    val_split: SplitData,
    params: Params,
    input_spec: tuple[int, Preprocessing],
    progress: bool,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
) -> FinetuneResult:
    """Frozen towers: encode both splits once (cached), train only the heads."""
    size, prep = input_spec
    model_params = model.params
    cache_dir = Path(params.train.cache_dir)
    train_f, val_f = (
        tower_features(split, model, size, prep, cache_dir, progress)
        for split in (train_split, val_split)
    )
    recipe = recipe_for(params)
    text_top = (
        model.text_tower.top(model_params.text_tune_layers)
        if model_params.text_tune_layers
        else None
    )
    started = time.monotonic()
    result = fit_heads(
        train_f, val_f, recipe, progress=progress, on_epoch_end=on_epoch_end, text_top=text_top
    )
    model.heads = result.heads
    return FinetuneResult(
        best_epoch=result.best_epoch,
        samples=len(train_f.texts) * len(result.history),
        train_seconds=time.monotonic() - started,
        history=result.history,
    )


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


def tower_input(model: DualModel, eval_size: int) -> tuple[Preprocessing, int]:
    """Preprocessing and input size: an open_clip tower fixes both; a timm one gives its
    normalisation and takes the profile's ``eval_size``."""
    fixed = getattr(model.image_tower, "input", None)
    if fixed is not None:
        return fixed
    from dove_model.model.preprocess import preprocessing_for

    return preprocessing_for(model.params.backbone), eval_size
