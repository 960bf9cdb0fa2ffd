"""Image decoding and transforms: any PIL mode (grayscale, RGBA, 16-bit, palette) and any size.

[family] train: resize -> random rotation (0..rotation deg) -> random crop; eval: resize.
Normalisation (mean, std) and the resize interpolation follow the backbone's pretrained
config in timm (EfficientNet-Lite: mean = std = 0.5, bicubic; ResNet: ImageNet statistics).
They are stored in the model directory, so training, evaluation, indexing and serving all use
the values the model was trained with; a model directory from before they were stored uses
``LEGACY`` (ImageNet statistics, bilinear), which is what it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from dove_model.errors import ConfigError, DataFormatError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = {
    "bilinear": transforms.InterpolationMode.BILINEAR,
    "bicubic": transforms.InterpolationMode.BICUBIC,
    "nearest": transforms.InterpolationMode.NEAREST,
    "lanczos": transforms.InterpolationMode.LANCZOS,
}


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become the backbone's input: per-channel mean/std and resize interpolation."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"interpolation {self.interpolation!r} is not one of {sorted(INTERPOLATIONS)}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"mean/std must be 3 values, std > 0: {self.mean}, {self.std}")

    def to_json(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Preprocessing:
        try:
            return cls(
                mean=tuple(float(v) for v in raw["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in raw["std"]),  # type: ignore[arg-type]
                interpolation=str(raw.get("interpolation", "bilinear")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid preprocessing {raw!r} ({exc})") from None

    @property
    def mode(self) -> transforms.InterpolationMode:
        return INTERPOLATIONS[self.interpolation]


# what every model directory written before preprocessing was stored was trained with
LEGACY = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, "bilinear")


def preprocessing_for(backbone: str) -> Preprocessing:
    """The backbone's pretrained config in timm (mean, std, interpolation); ImageNet if none."""
    import timm

    try:
        cfg = timm.get_pretrained_cfg(backbone)
    except (RuntimeError, ValueError):
        cfg = None
    if cfg is None:
        return Preprocessing(IMAGENET_MEAN, IMAGENET_STD, "bicubic")
    interpolation = cfg.interpolation if cfg.interpolation in INTERPOLATIONS else "bicubic"
    return Preprocessing(tuple(cfg.mean), tuple(cfg.std), interpolation)  # type: ignore[arg-type]


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


def eval_transform(size: int, prep: Preprocessing) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.Resize((size, size), interpolation=prep.mode, antialias=True),
            transforms.ToTensor(),
            transforms.Normalize(prep.mean, prep.std),
        ]
    )


def train_transform(
    resize: int, crop: int, rotation_degrees: float, prep: Preprocessing
) -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.Resize((resize, resize), interpolation=prep.mode, antialias=True),
            transforms.RandomRotation((0.0, rotation_degrees)),
            transforms.RandomCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(prep.mean, prep.std),
        ]
    )


def images_to_tensor(images: Sequence[Image.Image], size: int, prep: Preprocessing) -> torch.Tensor:
    """(B, 3, size, size) eval-transformed batch."""
    transform = eval_transform(size, prep)
    return torch.stack([transform(to_rgb(image)) for image in images])
