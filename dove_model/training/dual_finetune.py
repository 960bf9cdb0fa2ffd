"""The ``dual-gpu`` recipe: both towers fine-tuned with the heads (``feature_cache: false``).

Each step takes a batch of captions and their scenes' images (random resize/rotation/crop/
mirror), runs both towers with gradients and the symmetric InfoNCE loss. The pretrained towers
learn at ``backbone_lr`` and the fresh heads at ``lr``, both after a linear warm-up and with
step decay (the DOVE schedule), under AdamW. bf16 autocast on a GPU when ``amp``. The epoch
with the best validation mR is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dove_model.config import Params, TrainProfile
from dove_model.data.manifest import SplitData
from dove_model.device import resolve_device
from dove_model.evaluation.metrics import retrieval_metrics
from dove_model.model.dual import DualModel
from dove_model.model.dual_loss import info_nce
from dove_model.model.preprocess import Preprocessing, eval_transform, load_image, train_transform
from dove_model.training.dual_fit import epoch_record
from dove_model.training.feature_cache import ImageFiles
from dove_model.training.schedule import lr_factor

STATISTICS_SAMPLES = 512  # images and captions that set the heads' standardisation


@dataclass
class FinetuneResult:
    best_epoch: int
    samples: int
    train_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


class CaptionImages(Dataset):
    """Caption ``i`` -> (augmented image of its scene, caption, scene index)."""

    def __init__(self, split: SplitData, transform: Callable[[Any], torch.Tensor]) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return self.split.n_captions

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str, int]:
        scene = int(self.split.caption_image[i])
        pixels = self.transform(load_image(self.split.image_paths[scene]))
        if torch.rand(()) < 0.5:
            pixels = pixels.flip(-1)
        return pixels, self.split.captions[i], scene


def _collate(batch: list[tuple[torch.Tensor, str, int]]) -> tuple[torch.Tensor, list[str], Any]:
    pixels, texts, scenes = zip(*batch, strict=True)
    return torch.stack(pixels), list(texts), torch.as_tensor(scenes)


def split_embeddings(
    model: DualModel, split: SplitData, size: int, prep: Preprocessing, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, captions) unit embeddings of a split, eval transform, no gradients."""
    model.eval()
    loader = DataLoader(ImageFiles(split.image_paths, eval_transform(size, prep)), 64)
    with torch.inference_mode():
        images = torch.cat([model.embed_pixels(b.to(device)).float().cpu() for b in loader])
        texts = torch.cat(
            [
                model.embed_texts(split.captions[s : s + 256]).float().cpu()
                for s in range(0, split.n_captions, 256)
            ]
        )
    return images, texts


def _fit_statistics(model: DualModel, split: SplitData, size: int, prep: Preprocessing) -> None:
    """Standardise the heads' inputs with the pretrained towers' features on a sample."""
    rows = np.random.default_rng(0).permutation(split.n_images)[:STATISTICS_SAMPLES]
    paths = [split.image_paths[int(r)] for r in rows]
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        loader = DataLoader(ImageFiles(paths, eval_transform(size, prep)), 64)
        images = torch.cat([model.image_tower(b.to(device)).float().cpu() for b in loader])
        picked = np.random.default_rng(0).permutation(split.n_captions)[:STATISTICS_SAMPLES]
        texts = model.text_tower([split.captions[int(i)] for i in picked]).float().cpu()
    model.heads.fit_image_statistics(images.to(device))
    model.heads.text_head.fit_statistics(texts.to(device))


def finetune(
    model: DualModel,
    train: SplitData,
    val: SplitData,
    params: Params,
    size: int,
    prep: Preprocessing,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> FinetuneResult:
    profile = params.train.active
    device = resolve_device(params.train.device)
    model.to(device)
    _fit_statistics(model, train, size, prep)
    towers = [*model.image_tower.parameters(), *model.text_tower.parameters()]
    tower_lr = profile.backbone_lr if profile.backbone_lr is not None else profile.lr
    optimiser = torch.optim.AdamW(
        [
            {"params": list(model.heads.parameters()), "lr": profile.lr},
            {"params": towers, "lr": tower_lr},
        ],
        weight_decay=profile.weight_decay,
    )
    crop = size if getattr(model.image_tower, "input", None) else profile.crop  # ViT: fixed
    transform = train_transform(max(profile.resize, crop), crop, profile.rotation_degrees, prep)
    loader = DataLoader(
        CaptionImages(train, transform),
        batch_size=profile.batch_size,
        shuffle=True,
        drop_last=train.n_captions > profile.batch_size,
        num_workers=profile.num_workers,
        collate_fn=_collate,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, len(loader), profile)
    )
    best_state, best_mr = None, -1.0
    result = FinetuneResult(best_epoch=0, samples=0, train_seconds=0.0)
    for epoch in range(1, profile.epochs + 1):
        torch.manual_seed(params.train.seed * 1_000_003 + epoch)
        started = time.monotonic()
        loss = _train_epoch(model, loader, optimiser, schedule, profile, device, progress, result)
        result.train_seconds += time.monotonic() - started
        images, captions = split_embeddings(model, val, size, prep, device)
        metrics = retrieval_metrics((images @ captions.T).numpy(), val.caption_image)
        record = epoch_record(epoch, loss, optimiser, started, metrics)
        result.history.append(record)
        if metrics["mR"] > best_mr:
            best_mr, result.best_epoch = metrics["mR"], epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if on_epoch_end is not None:
            on_epoch_end(record)
        if progress:
            tqdm.write(f"epoch {epoch}: loss {loss:.3f}  val mR {metrics['mR']:.2f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.cpu().eval()
    return result


def _train_epoch(
    model: DualModel,
    loader: DataLoader,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    profile: TrainProfile,
    device: torch.device,
    progress: bool,
    result: FinetuneResult,
) -> float:
    """One pass over the captions with both towers trained; the mean loss."""
    autocast = device.type == "cuda" and profile.amp
    model.train()
    losses: list[float] = []
    bar = tqdm(loader, desc="dual fine-tune", unit="batch", leave=False, disable=not progress)
    for pixels, texts, scenes in bar:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            image = model.heads.image_head(model.heads.pool(model.image_tower(pixels.to(device))))
            text = model.heads.text_head(model.text_tower(texts))
            loss = info_nce(image.float(), text.float(), model.heads.logit_scale, scenes.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if profile.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), profile.grad_clip)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        result.samples += len(texts)
        bar.set_postfix(loss=f"{np.mean(losses):.3f}")
    return float(np.mean(losses))
