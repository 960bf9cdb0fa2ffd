"""Image decoding and transforms: any PIL mode (grayscale, RGBA, 16-bit, palette) and any size.

[family] train: resize -> random rotation (0..rotation deg) -> random crop; eval: resize.
Normalisation uses ImageNet statistics (what timm backbones expect).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from dove_model.errors import DataFormatError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (16-bit and float images are rescaled, not clipped)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P" or image.mode.endswith("A") or image.mode == "RGBa":
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def load_image(path: Path | str) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot read image ({exc})") from None


def eval_transform(size: int) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.Resize((size, size), antialias=True),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def train_transform(resize: int, crop: int, rotation_degrees: float) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.Resize((resize, resize), antialias=True),
            transforms.RandomRotation((0.0, rotation_degrees)),
            transforms.RandomCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def images_to_tensor(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """(B, 3, size, size) eval-transformed batch."""
    transform = eval_transform(size)
    return torch.stack([transform(to_rgb(image)) for image in images])
