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

from dove_model.families.dove.visual import PooledFeatures
from dove_model.families.dove.vocab import Vocabulary
from dove_model.model.preprocess import load_image


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
