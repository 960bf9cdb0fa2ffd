"""Incremental index update (``dove index add``) against a full rebuild of the same archive.

Renders a synthetic archive of ``--n`` images; the old archive is the same without the last
``--new-fraction`` of the images (by sorted id: files hard-linked, manifest filtered). Indexes
the old archive once, then times

* full rebuild: ``build_index`` of the grown archive (every image encoded), and
* incremental: ``update_index`` of the old index to the grown archive (only new images
  encoded; every file hashed; the vector indexes rebuilt from the stored float32 vectors),

with the same real encoder (an untrained DOVE model, ResNet-18, D = 64, at the dataset's
image size), checks that both hold the same images, and prints both times and their ratio.
The encoder dominates both: the incremental time scales with the images encoded, the rest
(hashing, FAISS rebuild, writing) with the archive. Prints, never asserts.

    .venv/bin/python bench/bench_incremental.py                    # 5,000 images, 1 % new
    .venv/bin/python bench/bench_incremental.py --n 20000 --threads 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from dove_model.config import Params, parse_params
from dove_model.data.manifest import read_manifest, write_manifest
from dove_model.data.prepare import prepare
from dove_model.index import build_index, load_archive
from dove_model.index.incremental import update_index
from dove_model.testing.deployment import tiny_model_dir


def archive_params(work: Path, n: int, size: int, name: str) -> Params:
    return parse_params(
        {
            "data": {
                "source": "synth",
                "path": str(work / f"synth-{name}"),
                "name": name,
                "prepared_dir": str(work / "prepared"),
                "synth": {"n_images": n, "seed": 0, "image_size": size},
            },
            "index": {"batch_size": 64},
        }
    )


T = TypeVar("T")


def timed(what: str, run: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    print(f"{what}: {seconds:.1f} s")
    return seconds, result


def prefix_of(dataset: Path, n_images: int, target: Path) -> Path:
    """The first ``n_images`` images of ``dataset`` as a dataset of their own (files
    hard-linked, manifest filtered): what the archive looked like before the new images."""
    frame = read_manifest(dataset)
    keep = list(dict.fromkeys(frame["image_id"].astype(str)))[:n_images]  # manifest order
    shutil.copytree(dataset, target, copy_function=os.link)
    write_manifest(frame[frame["image_id"].astype(str).isin(set(keep))], target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="images in the grown archive")
    parser.add_argument("--new-fraction", type=float, default=0.01)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_old = args.n - max(1, round(args.n * args.new_fraction))
    with tempfile.TemporaryDirectory(prefix="dove-bench-incr-") as tmp:
        work = Path(tmp)
        old = archive_params(work, n_old, args.image_size, "old")
        grown = archive_params(work, args.n, args.image_size, "grown")
        grown_data = prepare(grown, progress=False)
        old_data = prefix_of(grown_data, n_old, work / "prepared" / "old")
        model = tiny_model_dir(work / "model", ["a synthetic scene"])
        print(f"archive: {n_old} images indexed, grown to {args.n} ({args.n - n_old} new)")
        timed(
            "index of the old archive",
            lambda: build_index(model, old_data, old, work / "i0", progress=False),
        )
        full, _ = timed(
            "full rebuild",
            lambda: build_index(model, grown_data, grown, work / "full", progress=False),
        )
        incr, report = timed(
            "incremental",
            lambda: update_index(
                model, work / "i0", grown_data, grown, work / "incr", progress=False
            ),
        )
        print(f"  encoded +{report.added} -{report.removed}, kept {report.kept}")
        a, b = load_archive(work / "full", grown.index), load_archive(work / "incr", grown.index)
        same = list(a.images["image_id"]) == list(b.images["image_id"])
        print(f"same images in both: {same} ({a.n_images})")
        print(f"incremental / full: {incr / full:.1%} (target: under 5 %)")


if __name__ == "__main__":
    main()
