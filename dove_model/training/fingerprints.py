"""What a training cache key is made of, shared by every family: a split's images by
content, a module's weights by value, and the split's images as a dataset."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from dove_model.data.manifest import SplitData
from dove_model.model.preprocess import load_image


class ImageFiles(Dataset):
    """Images of a split, decoded and transformed (``transform`` default: eval resize)."""

    def __init__(
        self, paths: Sequence[Path], transform: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(load_image(self.paths[index]))


def weights_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def split_digest(split: SplitData) -> str:
    """The dataset version as far as this split's images go: ids, paths and content hashes."""
    from dove_model.data.manifest import read_manifest

    frame = read_manifest(split.dataset_dir)
    sha_of = dict(zip(frame["image_id"].astype(str), frame["sha256"].astype(str), strict=False))
    digest = hashlib.sha256()
    for image_id, path in zip(split.image_ids, split.image_paths, strict=True):
        digest.update(f"{image_id}\t{path.name}\t{sha_of.get(image_id)}\n".encode())
    return digest.hexdigest()
