"""The evaluate stage: exhaustive ROAM scores and the two-stage search, as metrics JSON.

Exhaustive: every (image, caption) pair scored by ROAM, in chunks so memory stays bounded.
Two-stage [ours, DOVE.md "serving at scale"]: top-K candidates by the global score
cos(V_M, T_G) per query (what the vector index does), re-ranked by ROAM; items outside a
query's top-K rank behind all candidates. ``two_stage_mR_gap`` = exhaustive mR - two-stage mR.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dove_model.allocator import retain_freed_memory_if_enabled
from dove_model.atomic import write_text
from dove_model.config import Params
from dove_model.data.manifest import load_split
from dove_model.device import resolve_device
from dove_model.families.dispatch import load_encoder
from dove_model.metrics import (
    random_chance_metrics,
    retrieval_metrics,
    tie_averaged_metrics,
)
from dove_model.model.encoding import Encoder, ImageParts, TextParts
from dove_model.model.preprocess import load_image


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k highest scores per row (unordered), (rows, k)."""
    k = min(k, scores.shape[1])
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def two_stage_scores(
    encoder: Encoder, images: ImageParts, texts: TextParts, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(i2t, t2i) score matrices: ROAM on each query's global top-K, ``-inf`` elsewhere.

    Both directions' candidate pairs are scored in one caption-major pass (``score_pairs``:
    each caption against all of its images at once); a pair that is a candidate in both
    directions is scored once.
    """
    global_scores = encoder.global_score(images, texts)
    n_img, n_txt = global_scores.shape
    i2t_pair = np.zeros((n_img, n_txt), bool)
    cand = top_k(global_scores, k)  # captions per image
    i2t_pair[np.repeat(np.arange(n_img), cand.shape[1]), cand.ravel()] = True
    t2i_pair = np.zeros((n_img, n_txt), bool)
    cand = top_k(global_scores.T, k)  # images per caption
    t2i_pair[cand.ravel(), np.repeat(np.arange(n_txt), cand.shape[1])] = True
    image_index, text_index = np.nonzero(i2t_pair | t2i_pair)
    roam = np.full((n_img, n_txt), -np.inf, np.float32)
    roam[image_index, text_index] = encoder.score_pairs(images, texts, image_index, text_index)
    i2t = np.where(i2t_pair, roam, np.float32(-np.inf))
    t2i = np.where(t2i_pair, roam, np.float32(-np.inf))
    return i2t, t2i


def metrics_report(
    encoder: Encoder,
    images: ImageParts,
    texts: TextParts,
    caption_image: np.ndarray,
    k: int,
    chunk_size: int,
) -> dict[str, Any]:
    """The contract's metrics dict (section 4) plus timings of both searches."""
    start = time.perf_counter()
    scores = encoder.score(images, texts, chunk_size)
    exhaustive = retrieval_metrics(scores, caption_image)
    exhaustive_s = time.perf_counter() - start
    start = time.perf_counter()
    i2t, t2i = two_stage_scores(encoder, images, texts, k)
    two_stage = retrieval_metrics(i2t, caption_image, t2i_scores=t2i)
    two_stage_s = time.perf_counter() - start
    chance = random_chance_metrics(caption_image, len(images))
    return {
        "n_images": len(images),
        "n_captions": len(texts),
        **exhaustive,
        "two_stage": {"k": k, **two_stage},
        "two_stage_mR_gap": exhaustive["mR"] - two_stage["mR"],
        # the literature's argsort protocol: exact ties (repeated captions) in random order
        "tie_averaged": tie_averaged_metrics(scores, caption_image),
        "random_chance_mR": chance["mR"],
        "seconds": {"exhaustive": round(exhaustive_s, 3), "two_stage": round(two_stage_s, 3)},
    }


def evaluate(
    model_dir: Path | str,
    dataset_dir: Path | str,
    params: Params,
    out_file: Path | str,
    *,
    split: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``evaluate.split`` (or ``split``) of ``dataset_dir`` and write the metrics JSON."""
    retain_freed_memory_if_enabled()
    cfg = params.evaluate
    split_name = split or cfg.split
    data = load_split(dataset_dir, split_name)
    encoder = load_encoder(model_dir, resolve_device(params.train.device))
    all_boxes = encoder.region_boxes(data.image_ids)
    batch = 32
    parts = []
    for start in tqdm(
        range(0, data.n_images, batch), desc="encode images", unit="batch", disable=not progress
    ):
        pil = [load_image(p) for p in data.image_paths[start : start + batch]]
        boxes = None if all_boxes is None else all_boxes[start : start + batch]
        parts.append(encoder.encode_images(pil, batch_size=batch, boxes=boxes))
    images = ImageParts(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("v_m", "v_mr", "r"))
    )
    texts = encoder.encode_texts(data.captions)
    report = {
        "split": split_name,
        **metrics_report(
            encoder, images, texts, data.caption_image, cfg.two_stage_k, cfg.chunk_size
        ),
        "model_fingerprint": encoder.fingerprint,
    }
    write_text(out_file, json.dumps(report, indent=2))
    return report
