"""The ``dual-cpu`` recipe: frozen pretrained towers, cached features, trained projections.

Each split is encoded once by the frozen towers, every image in each of its dihedral views
(``model/views.py``: a satellite scene turned or mirrored is the same scene; the views are the
only augmentation a feature cache allows). The projection heads then train on the cached
features with the symmetric InfoNCE loss, one random view of each scene per step, and embed an
image as the mean of its views; the epoch with the best validation mR is kept: selection never
sees the split that is reported.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dove_model.allocator import retain_freed_memory_if_enabled
from dove_model.data.manifest import SplitData
from dove_model.families.dual.heads import DualHeads, new_dual_heads
from dove_model.metrics import retrieval_metrics
from dove_model.model.contrastive import info_nce
from dove_model.model.preprocess import Preprocessing, eval_transform
from dove_model.model.views import features_per_view, pooled_mean
from dove_model.training.fingerprints import ImageFiles
from dove_model.training.run import seed_epoch
from dove_model.training.sampling import epoch_batches


@dataclass(frozen=True)
class DualRecipe:
    """Hyper-parameters of the heads (defaults: chosen on a UCM validation split)."""

    embed_dim: int = 512
    hidden: int = 2048
    dropout: float = 0.5
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.1
    batch_size: int = 256
    seed: int = 0
    text_lr: float = 5e-5  # LiT: the tuned top layers of the text tower (when given)


@dataclass(frozen=True)
class TowerFeatures:
    """One split through the frozen towers: (V, N, Di) images in V views, or (V, N, Di, h, w)
    float16 feature maps for an attention-pooled model; (M, Dt) captions."""

    image_views: torch.Tensor
    texts: torch.Tensor
    caption_image: torch.Tensor  # (M,) int64: the image of each caption
    # LiT only: (M, T, H) float16 token states entering the tuned top layers, (M, T) mask
    text_states: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.image_views.dim() not in (3, 5):
            raise ValueError("image_views must be (views, images, features[, h, w])")
        if len(self.texts) != len(self.caption_image):
            raise ValueError("captions and caption_image differ in number")

    @property
    def images(self) -> torch.Tensor:
        """(N, Di): each image as the mean of its views (how a mean-pooled model embeds it;
        feature maps averaged over their positions too)."""
        return pooled_mean(self.image_views, _position_mean)

    @property
    def maps(self) -> bool:
        """Whether the images are feature maps (an attention-pooled model's cache)."""
        return self.image_views.dim() == 5

    @property
    def n_images(self) -> int:
        return int(self.image_views.shape[1])


def _position_mean(features: torch.Tensor) -> torch.Tensor:
    return features.mean((-2, -1)) if features.dim() == 4 else features


@dataclass
class FitResult:
    heads: DualHeads
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)


def encode_split(
    split: SplitData,
    image_tower: nn.Module,
    text_tower: nn.Module,
    *,
    size: int,
    prep: Preprocessing,
    batch_size: int = 32,
    progress: bool = True,
    text_layers: int = 0,
    rotations: int = 1,
    mirror: bool = True,
) -> TowerFeatures:
    """Run ``split`` through the frozen towers (no gradients), each image in its dihedral
    views (``rotations`` quarter-turns, mirrored too with ``mirror``); with ``text_layers``
    also keep the token states entering the text tower's top ``text_layers`` layers (LiT)."""
    retain_freed_memory_if_enabled()
    image_tower.eval()
    text_tower.eval()
    loader = DataLoader(ImageFiles(split.image_paths, eval_transform(size, prep)), batch_size)
    views: list[torch.Tensor] = []
    texts: list[torch.Tensor] = []
    with torch.inference_mode():
        for batch in tqdm(loader, desc="image tower", unit="batch", disable=not progress):
            batch_views = features_per_view(image_tower, batch, rotations, mirror)
            # feature maps are 64x the size of a pooled vector: keep them in float16
            views.append(batch_views.half() if batch_views.dim() == 5 else batch_views)
        captions = split.captions
        for start in tqdm(
            range(0, len(captions), 256), desc="text tower", unit="batch", disable=not progress
        ):
            texts.append(text_tower(captions[start : start + 256]))
    states = _text_states(split.captions, text_tower, text_layers, progress)
    return TowerFeatures(
        image_views=torch.cat(views, dim=1),
        texts=torch.cat(texts),
        caption_image=torch.as_tensor(split.caption_image, dtype=torch.long),
        text_states=states[0] if states else None,
        text_mask=states[1] if states else None,
    )


def _text_states(
    captions: list[str], text_tower: nn.Module, layers: int, progress: bool
) -> tuple[torch.Tensor, torch.Tensor] | None:
    if layers <= 0:
        return None
    width = text_tower.token_width(captions)
    states, masks = [], []
    with torch.inference_mode():
        for start in tqdm(
            range(0, len(captions), 256), desc="text states", unit="batch", disable=not progress
        ):
            state, mask = text_tower.states_below_top(captions[start : start + 256], layers, width)
            states.append(state.half())
            masks.append(mask)
    return torch.cat(states), torch.cat(masks)


def caption_features(
    features: TowerFeatures, rows: torch.Tensor | slice, text_top: nn.Module | None
) -> torch.Tensor:
    """The text tower's output for captions ``rows``: cached, or through the tuned top."""
    if text_top is None:
        return features.texts[rows]
    if features.text_states is None or features.text_mask is None:
        raise ValueError("tuning text layers needs features encoded with text_layers")
    return text_top(features.text_states[rows].float(), features.text_mask[rows])


def new_heads(
    image_dim: int, text_dim: int, recipe: DualRecipe, attention_pool: bool = False
) -> DualHeads:
    return new_dual_heads(
        image_dim, text_dim, recipe.embed_dim, recipe.hidden, recipe.dropout, attention_pool
    )


def image_embeddings(heads: DualHeads, features: TowerFeatures, chunk: int = 256) -> torch.Tensor:
    """(N, D) the heads' image embeddings (unnormalised), each image pooled view by view and
    averaged over its views; in chunks of images, so feature maps never go float32 whole."""
    views = features.image_views
    return torch.cat(
        [
            heads.image_head(heads.image_features(views[:, s : s + chunk]))
            for s in range(0, features.n_images, chunk)
        ]
    )


def split_scores(
    heads: DualHeads, features: TowerFeatures, text_top: nn.Module | None = None
) -> np.ndarray:
    """(N_images, N_captions) cosine scores; images embedded as the mean of their views."""
    heads.eval()
    if text_top is not None:
        text_top.eval()
    with torch.inference_mode():
        images = image_embeddings(heads, features)
        texts = torch.cat(
            [
                heads.text_head(caption_features(features, slice(s, s + 512), text_top))
                for s in range(0, len(features.texts), 512)
            ]
        )
        images = nn.functional.normalize(images, dim=-1)
        texts = nn.functional.normalize(texts, dim=-1)
        return (images @ texts.T).numpy()


def epoch_record(
    epoch: int,
    loss: float,
    optimiser: torch.optim.Optimizer,
    started: float,
    val_metrics: dict[str, float],
) -> dict[str, Any]:
    """One epoch of a dual recipe's ``history.json`` (and ``on_epoch_end``): the same keys as
    DOVE's records, plus ``val_mR``."""
    return {
        "epoch": epoch,
        "loss": loss,
        "lr": optimiser.param_groups[0]["lr"],
        "seconds": round(time.monotonic() - started, 2),
        "val": val_metrics,
        "val_mR": val_metrics["mR"],
    }


def one_cycle(
    optimiser: torch.optim.Optimizer, recipe: DualRecipe, n_captions: int
) -> torch.optim.lr_scheduler.OneCycleLR:
    """10 % warm-up, then cosine annealing. The warm-up is kept at 2.5 steps or more: torch's
    OneCycleLR divides by its length, which is 0 for a run of 10 steps at 10 %."""
    steps = max(4, recipe.epochs * -(-n_captions // recipe.batch_size))
    warmup = min(0.9, max(0.1, 2.5 / steps))
    peaks = [group["lr"] for group in optimiser.param_groups]  # each group its own peak
    return torch.optim.lr_scheduler.OneCycleLR(
        optimiser, peaks, total_steps=steps, pct_start=warmup
    )


class HeadsFit:
    """The ``dual-cpu`` recipe, one epoch at a time: the heads (and, LiT, the text tower's
    top layers) with their AdamW and one-cycle schedule, on cached tower features. The train
    stage drives it through ``training/run.py``; :func:`fit_heads` drives it in memory."""

    def __init__(
        self, train: TowerFeatures, recipe: DualRecipe, text_top: nn.Module | None = None
    ) -> None:
        torch.manual_seed(recipe.seed)
        self.train_features, self.recipe, self.text_top = train, recipe, text_top
        heads = new_heads(train.image_views.shape[2], train.texts.shape[1], recipe, train.maps)
        heads.fit_image_statistics(train.image_views.flatten(0, 1))
        heads.text_head.fit_statistics(train.texts)
        self.heads = heads
        self.trained = nn.ModuleDict(
            {"heads": heads, **({"text_top": text_top} if text_top else {})}
        )
        groups = [{"params": list(heads.parameters()), "lr": recipe.lr}]
        if text_top is not None:
            groups.append({"params": list(text_top.parameters()), "lr": recipe.text_lr})
        self.optimiser = torch.optim.AdamW(groups, weight_decay=recipe.weight_decay)
        self.schedule = one_cycle(self.optimiser, recipe, len(train.texts))

    @property
    def lr(self) -> float:
        return float(self.optimiser.param_groups[0]["lr"])

    def train_step(self, pairs: torch.Tensor) -> float:
        """One step on captions ``pairs`` (this rank's share); the loss. Gradients are left
        for the caller's ``before_update`` (data-parallel averaging) via :meth:`update`."""
        heads, train = self.heads, self.train_features
        scenes = train.caption_image[pairs]
        view = torch.randint(len(train.image_views), (len(pairs),))
        pixels = heads.pool(train.image_views[view, scenes].float())
        texts = heads.text_head(caption_features(train, pairs, self.text_top))
        loss = info_nce(heads.image_head(pixels), texts, heads.logit_scale, scenes)
        self.optimiser.zero_grad()
        loss.backward()
        return float(loss.detach())

    def update(self) -> None:
        self.optimiser.step()
        self.schedule.step()

    def train_mode(self) -> None:
        self.trained.train()

    def val_metrics(self, val: TowerFeatures) -> dict[str, float]:
        scores = split_scores(self.heads, val, self.text_top)
        return retrieval_metrics(scores, val.caption_image.numpy())


def fit_heads(
    train: TowerFeatures,
    val: TowerFeatures,
    recipe: DualRecipe = DualRecipe(),
    *,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    text_top: nn.Module | None = None,
) -> FitResult:
    """Train the heads on ``train`` in memory and keep the epoch with the best ``val`` mR
    (benchmark sweeps; the train stage runs the same epochs with checkpoints, resume, the
    time budget and early stopping).

    ``text_top`` (LiT): the text tower's top layers, trained at ``recipe.text_lr`` on the
    cached token states; left holding the best epoch's weights. Each epoch's record
    (``epoch``, ``loss``, ``lr``, ``seconds``, ``val``: the retrieval metrics, ``val_mR``)
    goes to ``history`` and to ``on_epoch_end``.
    """
    fit = HeadsFit(train, recipe, text_top)
    best_state, best_mr, best_epoch = copy.deepcopy(fit.trained.state_dict()), -1.0, 0
    history: list[dict[str, Any]] = []
    bar = tqdm(range(1, recipe.epochs + 1), desc="dual heads", unit="epoch", disable=not progress)
    for epoch in bar:
        started = time.monotonic()
        loss = heads_epoch(fit, epoch)
        val_metrics = fit.val_metrics(val)
        record = epoch_record(epoch, loss, fit.optimiser, started, val_metrics)
        history.append(record)
        bar.set_postfix(loss=f"{loss:.3f}", val_mR=f"{val_metrics['mR']:.1f}")
        if val_metrics["mR"] > best_mr:
            best_state, best_epoch = copy.deepcopy(fit.trained.state_dict()), epoch
            best_mr = val_metrics["mR"]
        if on_epoch_end is not None:
            on_epoch_end(record)
    fit.trained.load_state_dict(best_state)
    return FitResult(heads=fit.heads, best_epoch=best_epoch, history=history)


def heads_epoch(fit: HeadsFit, epoch: int) -> float:
    """One single-process epoch: every caption once, in batches of ``recipe.batch_size``."""
    seed_epoch(fit.recipe.seed, epoch)
    fit.train_mode()
    losses = []
    n, size = len(fit.train_features.texts), fit.recipe.batch_size
    for batch in epoch_batches(n, size, fit.recipe.seed, epoch, keep_tail=True):
        losses.append(fit.train_step(torch.as_tensor(batch)))
        fit.update()
    return float(np.mean(losses))


def save_features(features: TowerFeatures, path: Path) -> None:
    torch.save(features.__dict__, path)


def load_features(path: Path) -> TowerFeatures:
    return TowerFeatures(**torch.load(path, weights_only=True))


def subset(features: TowerFeatures, image_rows: Sequence[int]) -> TowerFeatures:
    """The images ``image_rows`` and their captions, renumbered."""
    rows = torch.as_tensor(list(image_rows), dtype=torch.long)
    keep = torch.isin(features.caption_image, rows)
    renumber = torch.full((features.n_images,), -1, dtype=torch.long)
    renumber[rows] = torch.arange(len(rows))
    return TowerFeatures(
        image_views=features.image_views[:, rows],
        texts=features.texts[keep],
        caption_image=renumber[features.caption_image[keep]],
        text_states=None if features.text_states is None else features.text_states[keep],
        text_mask=None if features.text_mask is None else features.text_mask[keep],
    )
