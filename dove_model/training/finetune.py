"""Contrastive fine-tuning of pretrained towers, shared by the families scored by one
cosine (dual: ``feature_cache: false``, the ``dual-gpu`` profile; clip: ``zero_shot: false``).

Each step takes a batch of captions and their scenes' images (random resize/rotation/crop/
mirror), runs both towers with gradients and the symmetric InfoNCE loss. The pretrained towers
learn at ``backbone_lr`` and anything fresh (the dual family's heads) at ``lr``, both after a
linear warm-up and with step decay (the DOVE schedule), under AdamW. bf16 autocast on a GPU
when ``amp``. The model brings three things (:class:`Finetunable`); the run
(``training/run.py``) brings the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dove_model.data.manifest import SplitData
from dove_model.metrics import retrieval_metrics
from dove_model.model.contrastive import info_nce
from dove_model.model.preprocess import Preprocessing, eval_transform, load_image, train_transform
from dove_model.training.distributed import average_gradients
from dove_model.training.fingerprints import ImageFiles
from dove_model.training.run import EpochStats, TrainingRun
from dove_model.training.sampling import epoch_batches
from dove_model.training.schedule import lr_factor

STATISTICS_SAMPLES = 512  # images and captions a model may look at before training


class Finetunable(Protocol):
    """What a model gives the shared fine-tune besides being an ``nn.Module``."""

    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def embed_texts(self, texts: list[str]) -> torch.Tensor: ...

    def training_embeddings(
        self, pixels: torch.Tensor, texts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image embeddings, caption embeddings, log temperature) with gradients."""
        ...

    def optimiser_groups(self, lr: float, tower_lr: float) -> list[dict[str, Any]]: ...

    def prepare_training(self, images: torch.Tensor, captions: list[str]) -> None:
        """A look at a sample before the first step (e.g. the heads' standardisation)."""
        ...


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
    model: Any, split: SplitData, size: int, prep: Preprocessing, device: torch.device
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


def _sample(split: SplitData, size: int, prep: Preprocessing) -> tuple[torch.Tensor, list[str]]:
    """A fixed sample of the split's images (eval transform) and captions."""
    rows = np.random.default_rng(0).permutation(split.n_images)[:STATISTICS_SAMPLES]
    loader = DataLoader(
        ImageFiles([split.image_paths[int(r)] for r in rows], eval_transform(size, prep)), 64
    )
    picked = np.random.default_rng(0).permutation(split.n_captions)[:STATISTICS_SAMPLES]
    return torch.cat(list(loader)), [split.captions[int(i)] for i in picked]


class TowerFinetune:
    """The fine-tune, one epoch at a time, driven by ``training/run.py``: the model's groups
    under AdamW (towers at ``backbone_lr``), warm-up and step decay per step; data-parallel
    under torchrun (each rank a share of every batch, gradients averaged). ``fixed_input``:
    the image tower takes only ``size`` (a ViT), so the crop is the size."""

    def __init__(
        self,
        run: TrainingRun,
        model: Any,
        input_spec: tuple[int, Preprocessing],
        fixed_input: bool = False,
    ) -> None:
        size, prep = input_spec
        self.run, self.model, self.size, self.prep = run, model, size, prep
        profile = run.profile
        model.to(run.device)
        model.eval()
        with torch.inference_mode():
            pixels, captions = _sample(run.train_split, size, prep)
            model.prepare_training(pixels.to(run.device), captions)
        tower_lr = profile.backbone_lr if profile.backbone_lr is not None else profile.lr
        self.optimiser = torch.optim.AdamW(
            model.optimiser_groups(profile.lr, tower_lr), weight_decay=profile.weight_decay
        )
        crop = size if fixed_input else profile.crop
        transform = train_transform(max(profile.resize, crop), crop, profile.rotation_degrees, prep)
        self.dataset = CaptionImages(run.train_split, transform)
        steps = len(self._batches(1))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda step: lr_factor(step, steps, profile)
        )
        self.trained: nn.Module = model

    @property
    def lr(self) -> float:
        return float(self.optimiser.param_groups[0]["lr"])

    def _batches(self, epoch: int) -> list[np.ndarray]:
        run = self.run
        n, size = run.train_split.n_captions, run.profile.batch_size
        return epoch_batches(n, size, run.seed, epoch, run.dist.rank, run.dist.world_size)

    def train_epoch(self, epoch: int) -> EpochStats:
        """One pass over this rank's share of the captions; stops when time runs out."""
        run, profile, model = self.run, self.run.profile, self.model
        autocast = run.device.type == "cuda" and profile.amp
        loader = DataLoader(
            self.dataset,
            batch_sampler=[b.tolist() for b in self._batches(epoch)],
            num_workers=profile.num_workers,
            collate_fn=_collate,
        )
        model.train()
        done = EpochStats(epoch)
        bar = tqdm(
            loader, desc="dual fine-tune", unit="batch", leave=False, disable=not run.show_progress
        )
        for pixels, texts, scenes in run.timed_steps(done, bar):
            with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=autocast):
                image, text, scale = model.training_embeddings(pixels.to(run.device), texts)
                loss = info_nce(image.float(), text.float(), scale, scenes.to(run.device))
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            average_gradients(run.dist, model.parameters())
            if profile.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), profile.grad_clip)
            self.optimiser.step()
            self.schedule.step()
            done.add_step(float(loss.detach()), len(texts) * run.dist.world_size)
            bar.set_postfix(loss=f"{done.mean_loss:.3f}")
        return done

    def val_metrics(self) -> dict[str, float]:
        run = self.run
        images, captions = split_embeddings(
            self.model, run.val_split, self.size, self.prep, run.device
        )
        return retrieval_metrics((images @ captions.T).numpy(), run.val_split.caption_image)
