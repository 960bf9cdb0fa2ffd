"""Frozen-backbone feature cache: pooled C3-C5 vectors and RoIAlign regions per image.

With ``freeze_backbone: true`` the backbone output is a pure function of (image bytes,
backbone weights, image size, preprocessing, region boxes, quarter-turn views). The cache key
hashes exactly those, so a changed dataset version, backbone, weight file, size,
normalisation, box layout or view count can never hit a stale entry.
Entries are float16 safetensors files written atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from dove_model.atomic import atomic_path
from dove_model.data.manifest import SplitData
from dove_model.families.dove.visual import Backbone, PooledFeatures
from dove_model.model.preprocess import Preprocessing, eval_transform
from dove_model.training.fingerprints import ImageFiles, split_digest, weights_digest

CACHE_FORMAT = 2  # 2: the preprocessing is part of the key


def cache_key(
    split: SplitData,
    backbone_name: str,
    backbone: Backbone,
    image_size: int,
    prep: Preprocessing,
    boxes_id: str,
) -> str:
    parts = {
        "format": CACHE_FORMAT,
        "images": split_digest(split),
        "backbone": backbone_name,
        "weights": weights_digest(backbone),
        "image_size": image_size,
        "preprocess": prep.to_json(),
        "regions": boxes_id,
    }
    if backbone.rotations > 1:  # averaged quarter-turns; keys of single-view caches unchanged
        parts["rotations"] = backbone.rotations
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


@torch.inference_mode()
def compute_features(
    backbone: Backbone,
    paths: Sequence[Path],
    image_size: int,
    prep: Preprocessing,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 0,
    boxes: torch.Tensor | None = None,
    desc: str = "features",
    progress: bool = True,
) -> PooledFeatures:
    """Run the frozen backbone over images (eval transform) with a progress bar."""
    backbone.eval()
    loader = DataLoader(
        ImageFiles(paths, eval_transform(image_size, prep)),
        batch_size=batch_size,
        num_workers=num_workers,
    )
    levels, regions = [], []
    start = 0
    for images in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
        batch_boxes = None if boxes is None else boxes[start : start + len(images)].to(device)
        out = backbone(images.to(device), batch_boxes)
        levels.append(out.levels.float().cpu())
        regions.append(out.regions.float().cpu())
        start += len(images)
    return PooledFeatures(levels=torch.cat(levels), regions=torch.cat(regions))


def cached_features(
    cache_dir: Path,
    key: str,
    compute: Callable[[], PooledFeatures],
) -> tuple[PooledFeatures, bool]:
    """Load the entry for ``key`` or compute and store it. Returns (features, was_cached)."""
    path = cache_dir / f"{key}.safetensors"
    if path.is_file():
        try:
            stored = load_file(str(path))
            return PooledFeatures(stored["levels"].float(), stored["regions"].float()), True
        except Exception:  # a corrupt entry is recomputed, never trusted
            path.unlink(missing_ok=True)
    features: PooledFeatures = compute()
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({"levels": features.levels.half(), "regions": features.regions.half()}, str(tmp))
    # what a later run will read: keep the two runs identical by using the stored precision
    return PooledFeatures(features.levels.half().float(), features.regions.half().float()), False
