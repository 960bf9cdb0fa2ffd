"""Caption batches for one epoch, reproducible from (seed, epoch) and sharded for DDP.

[family] an epoch visits every caption once; a batch may hold several captions of one image
(the loss never uses those pairs as negatives). Under DDP each global batch is split across
ranks so the ranks together see exactly what a single process would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from dove_model.model.preprocess import load_image
from dove_model.model.visual import PooledFeatures
from dove_model.model.vocab import Vocabulary


def epoch_batches(
    n_captions: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[np.ndarray]:
    """Caption indices per step for this rank; the last short batch is dropped (>= 2 kept)."""
    order = np.random.default_rng([seed, epoch]).permutation(n_captions)
    n_full = n_captions // batch_size
    batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_full)]
    tail = order[n_full * batch_size :]
    if len(tail) >= 2 * world_size and not batches:
        batches.append(tail)
    return [b[rank::world_size] for b in batches]


@dataclass(frozen=True)
class CaptionBatches(Dataset):
    """Map-style dataset whose items are whole batches (indexed by caption-index arrays).

    Gives the model's forward kwargs: ids, lengths, image_index (into the batch's distinct
    images) and either ``images`` (decoded, augmented) or cached ``levels`` + ``regions``.
    """

    captions: list[str]
    caption_image: np.ndarray
    vocab: Vocabulary
    image_paths: list | None = None
    transform: Callable[[Image.Image], torch.Tensor] | None = None
    features: PooledFeatures | None = None

    def __len__(self) -> int:  # not used for sampling; batches come from the sampler
        return len(self.captions)

    def __getitem__(self, caption_indices: np.ndarray) -> dict[str, torch.Tensor]:
        images = self.caption_image[caption_indices]
        distinct, image_index = np.unique(images, return_inverse=True)
        ids, lengths = self.vocab.encode_batch([self.captions[i] for i in caption_indices])
        batch = {
            "ids": ids,
            "lengths": lengths,
            "image_index": torch.from_numpy(image_index.astype(np.int64)),
        }
        if self.features is not None:
            rows = torch.from_numpy(distinct)
            batch["levels"] = self.features.levels[rows]
            batch["regions"] = self.features.regions[rows]
        else:
            assert self.image_paths is not None and self.transform is not None
            batch["images"] = torch.stack(
                [self.transform(load_image(self.image_paths[i])) for i in distinct]
            )
        return batch
