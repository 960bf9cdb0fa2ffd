"""Index build throughput (images/s on CPU) and the quality cost of two-stage search.

Two-stage = FAISS candidates (top ``--candidates`` by the global score) re-ranked by ROAM,
exactly as the service does it (``Searcher``); exhaustive = ROAM over every pair. Both are
scored with the project's recall code on one split. Prints, never asserts.

    .venv/bin/python bench/bench_index.py --model-dir artifacts/train/model \
        --dataset data/prepared/ucm --split test
    .venv/bin/python bench/bench_index.py          # UCM test split from ../shared, and an
                                                   # untrained model if none is given
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dove_model.config import load_params, parse_params
from dove_model.data.manifest import load_split
from dove_model.families.dove.inference import DoveEncoder
from dove_model.index import build_index, load_archive
from dove_model.index.encoder import ImageArrays
from dove_model.metrics import retrieval_metrics
from dove_model.serving.search import Searcher
from dove_model.testing.deployment import tiny_model_dir

PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"

UCM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ucm-captions"


def prepare_ucm(work: Path) -> Path:
    from dove_model.data.prepare import prepare

    params = parse_params(
        {
            "data": {
                "source": "karpathy",
                "path": str(UCM / "dataset.json"),
                "images_dir": str(UCM / "images"),
                "name": "ucm",
                "prepared_dir": str(work / "prepared"),
            }
        }
    )
    return prepare(params, progress=False)


def two_stage_scores(
    searcher: Searcher, split_images: list[Path], captions: list[str], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(i2t, t2i) matrices (N_img, N_cap): ROAM scores of candidates, -inf elsewhere."""
    archive = searcher.archive
    n_img, n_cap = archive.n_images, archive.n_captions
    t2i = np.full((n_img, n_cap), -np.inf, np.float32)
    for j, caption in enumerate(tqdm(captions, desc="text -> image", unit="query")):
        for hit in searcher.search_images(caption, k):
            t2i[hit.row, j] = hit.score
    i2t = np.full((n_img, n_cap), -np.inf, np.float32)
    for i, path in enumerate(tqdm(split_images, desc="image -> text", unit="query")):
        with Image.open(path) as img:
            for hit in searcher.search_texts(img.convert("RGB"), k):
                i2t[i, hit.row] = hit.score
    return i2t, t2i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--dataset", type=Path, default=None, help="prepared dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        work = Path(tmp)
        dataset = args.dataset or prepare_ucm(work)
        split = load_split(dataset, args.split)
        model_dir = args.model_dir
        if model_dir is None:
            demo = load_params(PROJECT_PARAMS)  # its demo profile: EfficientNet-Lite0, D=256
            demo = demo.model_copy(
                update={"train": demo.train.model_copy(update={"profile": "demo"})}
            )
            model_dir = tiny_model_dir(
                work / "model", split.captions, model=demo.model_for_training(),
                eval_size=demo.train.active.eval_size,
            )  # fmt: skip
            print("note: no --model-dir, using an UNTRAINED demo-architecture model")
        params = parse_params({"index": {"splits": [args.split]}})

        start = time.perf_counter()
        index_dir = build_index(model_dir, dataset, params, work / "index")
        seconds = time.perf_counter() - start
        print(
            f"index build: {split.n_images} images + {split.n_captions} captions in "
            f"{seconds:.1f} s = {split.n_images / seconds:.1f} images/s "
            f"(encode + FAISS, {args.threads} CPU threads)"
        )

        encoder = DoveEncoder.from_dir(model_dir)
        archive = load_archive(index_dir, params.index)
        assert archive.captions["caption"].tolist() == split.captions, "index order differs"
        images = ImageArrays(
            *(np.asarray(a, np.float32) for a in (archive.arrays.v_m, archive.arrays.v_mr,
                                                   archive.arrays.r))
        )  # fmt: skip
        exhaustive = retrieval_metrics(
            encoder.score(images, encoder.encode_texts(split.captions)), split.caption_image
        )
        searcher = Searcher(encoder, archive, candidates_k=args.candidates)
        i2t, t2i = two_stage_scores(searcher, split.image_paths, split.captions, args.candidates)
        two_stage = retrieval_metrics(i2t, split.caption_image, t2i_scores=t2i)
        keys = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "mR"]
        print(f"split {args.split}: {split.n_images} images, {split.n_captions} captions; "
              f"candidates K={args.candidates}")  # fmt: skip
        print("             " + " ".join(f"{k:>8}" for k in keys))
        for name, metrics in (("exhaustive", exhaustive), ("two-stage", two_stage)):
            print(f"{name:<12} " + " ".join(f"{metrics[k]:8.2f}" for k in keys))
        print(f"two-stage mR gap: {exhaustive['mR'] - two_stage['mR']:.2f} points")


if __name__ == "__main__":
    main()
