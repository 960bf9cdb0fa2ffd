"""What a perfect model could score on UCM-Captions' test split, strict and with ties averaged.

    .venv/bin/python bench/ucm_ceiling.py [--data ../shared/datasets/ucm-captions] [--out DIR]

UCM repeats captions: most test images share their sentences with other images of the same
scene class, and identical texts get identical embeddings from any text encoder, so they tie
exactly. Two oracles scored by the project's own metrics (``evaluation/metrics.py``):

- *class oracle*: knows each image's scene class and nothing else (every image of the right
  class ahead of every other, all tied within the class);
- *text oracle*: also knows which exact sentences each image was captioned with (those first,
  then the rest of its class).

Strict ``mR`` counts a tie against the query; ``tie_averaged`` orders ties at random. A model
whose scores never tie exactly can land anywhere between, so the class oracle's tie-averaged
mR is the line a model must cross to show it tells images of one class apart. UCM image ids
run 1..2100, 100 per class in class order (checked here), which is where the class comes from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ucm_ablation import UCM, prepared_ucm

from dove_model.data.manifest import load_split
from dove_model.metrics import (
    random_chance_metrics,
    retrieval_metrics,
    tie_averaged_metrics,
)

IMAGES_PER_CLASS = 100


def scene_classes(image_paths: list[Path]) -> np.ndarray:
    ids = np.array([int(Path(p).stem) for p in image_paths])
    if ids.min() < 1 or ids.max() > 21 * IMAGES_PER_CLASS:
        raise SystemExit("image ids outside 1..2100: not the UCM-Captions numbering")
    return (ids - 1) // IMAGES_PER_CLASS


def oracle_scores(classes: np.ndarray, captions: list[str], caption_image: np.ndarray):
    """(class oracle, text oracle) score matrices, (N_images, N_captions)."""
    texts = [c.strip().lower().rstrip(" .") for c in captions]
    same_class = (classes[:, None] == classes[caption_image][None, :]).astype(np.float64)
    own_texts = [set() for _ in classes]
    for text, image in zip(texts, caption_image, strict=True):
        own_texts[image].add(text)
    said = np.array([[text in own for text in texts] for own in own_texts], dtype=np.float64)
    return same_class, same_class + said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=UCM)
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--out", type=Path, default=Path("/tmp/dove-dual-ucm"), help="shared with dual_ucm.py"
    )
    args = parser.parse_args()
    if not (args.data / "dataset.json").is_file():
        raise SystemExit(f"{args.data}: no UCM-Captions dataset.json here")
    split = load_split(prepared_ucm(args.out, args.data), args.split)
    caption_image = np.asarray(split.caption_image)
    classes = scene_classes(list(split.image_paths))
    distinct = len({c.strip().lower() for c in split.captions})
    print(
        f"{args.split}: {split.n_images} images in {len(set(classes))} classes, "
        f"{len(split.captions)} captions, {distinct} distinct"
    )
    chance = random_chance_metrics(caption_image, split.n_images)["mR"]
    print(f"random chance: mR {chance:.1f}")
    print("| oracle | strict mR | tie-averaged mR | tie-averaged R@1/5/10 i2t | t2i |")
    print("|---|---|---|---|---|")
    for name, scores in zip(
        ("class oracle", "text oracle"),
        oracle_scores(classes, split.captions, caption_image),
        strict=True,
    ):
        strict = retrieval_metrics(scores, caption_image)["mR"]
        ties = tie_averaged_metrics(scores, caption_image)
        i2t = "/".join(f"{ties[f'i2t_r{k}']:.1f}" for k in (1, 5, 10))
        t2i = "/".join(f"{ties[f't2i_r{k}']:.1f}" for k in (1, 5, 10))
        print(f"| {name} | {strict:.1f} | {ties['mR']:.1f} | {i2t} | {t2i} |")


if __name__ == "__main__":
    main()
