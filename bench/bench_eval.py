"""Evaluation speed at the RSICD test size: exhaustive ROAM scoring vs two-stage search.

    .venv/bin/python bench/bench_eval.py [--embed-dim 512] [--k 100] [--threads 2]

1,093 images x 5,465 captions (the RSICD test split). Captions are the real RSICD test
captions (``../shared/datasets/captions-only/RSICD``), the vocabulary is built from its train
captions; the model has random weights (no RSICD images here), so image parts come from the
head on random pooled backbone features. Prints both times, the speed-up and the two-stage mR
gap (at random weights both mRs sit near chance: the gap that matters is a trained model's,
which ``dove evaluate`` reports as ``two_stage_mR_gap``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dove_model.evaluation.evaluate import two_stage_scores
from dove_model.families.dove.inference import DoveEncoder, ImageParts
from dove_model.families.dove.model import DoveModel
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.visual import PooledFeatures
from dove_model.families.dove.vocab import Vocabulary
from dove_model.metrics import random_chance_metrics, retrieval_metrics

RSICD = Path(__file__).resolve().parents[2] / "shared/datasets/captions-only/RSICD/rsicd_precomp"
N_IMAGES = 1093


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed-dim", type=int, default=512)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train_caps = read_lines(RSICD / "train_caps.txt")
    test_caps = read_lines(RSICD / "test_caps.txt")[: 5 * N_IMAGES]
    caption_image = np.repeat(np.arange(N_IMAGES), 5)
    params = DoveSettings(backbone=args.backbone, embed_dim=args.embed_dim)
    vocab = Vocabulary.build(train_caps, params.vocab_min_freq, params.max_len)
    model = DoveModel(params, len(vocab)).eval()
    encoder = DoveEncoder(model, vocab, eval_size=256)

    start = time.perf_counter()
    channels = model.backbone.level_channels
    features = PooledFeatures(
        levels=torch.rand(N_IMAGES, sum(channels)),
        regions=torch.rand(N_IMAGES, model.backbone.n_grid_regions, model.backbone.region_channels),
    )
    with torch.inference_mode():
        emb = model.image_embeddings(features)
    images = ImageParts(emb.v_m.numpy(), emb.v_mr.numpy(), emb.r.numpy())
    texts = encoder.encode_texts(test_caps)
    encode_s = time.perf_counter() - start

    start = time.perf_counter()
    exhaustive = retrieval_metrics(encoder.score(images, texts, args.chunk), caption_image)
    exhaustive_s = time.perf_counter() - start
    start = time.perf_counter()
    i2t, t2i = two_stage_scores(encoder, images, texts, args.k)
    two_stage = retrieval_metrics(i2t, caption_image, t2i_scores=t2i)
    two_stage_s = time.perf_counter() - start
    chance = random_chance_metrics(caption_image, N_IMAGES)["mR"]

    print(
        f"RSICD test size: {N_IMAGES} images x {len(test_caps)} captions, D={args.embed_dim}, "
        f"random weights, {args.threads} CPU thread(s)"
    )
    print(f"encode (heads + {len(test_caps)} captions): {encode_s:.1f} s")
    print(f"exhaustive ROAM scoring ({N_IMAGES * len(test_caps):,} pairs): {exhaustive_s:.1f} s")
    print(
        f"two-stage (global top-{args.k}, ROAM re-rank): {two_stage_s:.1f} s  "
        f"-> {exhaustive_s / two_stage_s:.1f}x faster"
    )
    print(
        f"mR exhaustive {exhaustive['mR']:.2f}  two-stage {two_stage['mR']:.2f}  "
        f"gap {exhaustive['mR'] - two_stage['mR']:.2f}  (random chance {chance:.2f})"
    )


if __name__ == "__main__":
    main()
