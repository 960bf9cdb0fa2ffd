"""``dove data synth``: render the synthetic default dataset (images + ``captions.csv``).

Output (the CSV format that ``dove data import --format csv`` reads)::

    <out>/images/<label>_<index>.jpg     256x256 RGB JPEG (quality 92)
    <out>/captions.csv                   image,caption,split,label (5 rows per image;
                                         ``image`` relative to ``images/``)
    <out>/synth.json                     the parameters it was rendered with

Deterministic: image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so the bytes
(and DVC's md5s) are the same for the same seed, whatever the number of worker processes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dove_model.atomic import atomic_dir
from dove_model.config import SynthParams
from dove_model.data.synth_scenes import SCENES, Facts

CAPTIONS_FILE = "captions.csv"
SYNTH_INFO_FILE = "synth.json"
SYNTH_VERSION = 1  # bump when the scenes or captions change for the same seed
JPEG_QUALITY = 92


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    n_images: int
    n_captions: int
    seconds: float
    split_counts: dict[str, int]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def captions_for(facts: Facts, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` different captions: class-specific sentences plus generic templates."""
    scene = [str(s) for s in rng.permutation(facts.scene)]
    where = f" {facts.where}" if facts.where else ""
    main = scene[0]
    alt = scene[-1]
    be = "is" if facts.subject.startswith(("a ", "an ", "one ", "the ")) else "are"
    generic = [
        f"There {be} {facts.subject}{where}.",
        f"The picture shows {facts.subject}{where}.",
        f"An aerial view showing {facts.subject}{where}.",
        f"We can see {facts.subject}{where}.",
    ]
    scene_words = {w for name in facts.scene for w in name.split()}
    stated = set(f"{facts.subject} {facts.where}".replace("-", " ").split())
    if not scene_words & stated:  # else "a forest with a dense forest"
        generic += [
            f"This is {_article(main)} {main} with {facts.subject}{where}.",
            f"An aerial view of {_article(alt)} {alt} showing {facts.subject}{where}.",
            f"We can see {facts.subject}{where} in this {main}.",
            f"In the image, {_article(main)} {main} contains {facts.subject}{where}.",
        ]
    chosen = list(facts.extra) + [generic[i] for i in rng.permutation(len(generic))]
    out: list[str] = []
    for sentence in chosen:
        text = sentence[0].upper() + sentence[1:]
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def assign_splits(n: int, params: SynthParams) -> list[str]:
    """Stratified by class (image i has class i mod n_classes): images are dealt round-robin
    over the classes in a seeded order, and the first ones dealt go to test, then val."""
    rng = np.random.default_rng([params.seed, 1_000_003])
    n_classes = len(SCENES)
    members = [rng.permutation(np.arange(c, n, n_classes)) for c in range(n_classes)]
    dealt: list[int] = []
    for k in range(max(len(m) for m in members)):
        for c in rng.permutation(n_classes):
            if k < len(members[c]):
                dealt.append(int(members[c][k]))
    n_test, n_val = round(n * params.test_fraction), round(n * params.val_fraction)
    splits = [""] * n
    for rank, index in enumerate(dealt):
        splits[index] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return splits


def render_one(index: int, seed: int, size: int, n_captions: int) -> tuple[str, bytes, list[str]]:
    """Label, JPEG bytes and captions of image ``index``: a pure function of its arguments."""
    labels = list(SCENES)
    label = labels[index % len(labels)]
    rng = np.random.default_rng([seed, index])
    image, facts = SCENES[label](rng, size)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return label, buffer.getvalue(), captions_for(facts, rng, n_captions)


def _render_batch(args: tuple[list[int], int, int, int]) -> list[tuple[str, bytes, list[str]]]:
    indices, seed, size, n_captions = args
    return [render_one(i, seed, size, n_captions) for i in indices]


def synth_info(params: SynthParams) -> dict[str, object]:
    """What ``synth.json`` records: the generator version and the settings."""
    return {"generator": "dove-synth", "version": SYNTH_VERSION, **params.model_dump()}


def is_rendered(out_dir: Path | str, params: SynthParams) -> bool:
    """True when ``out_dir`` holds a rendering with exactly these settings."""
    info_file = Path(out_dir) / SYNTH_INFO_FILE
    if not (Path(out_dir) / CAPTIONS_FILE).is_file() or not info_file.is_file():
        return False
    try:
        return json.loads(info_file.read_text(encoding="utf-8")) == synth_info(params)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def render_synth(
    out_dir: Path | str,
    params: SynthParams,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> SynthSummary:
    """Render ``params.n_images`` scenes into ``out_dir`` (replaced atomically)."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    n = params.n_images
    splits = assign_splits(n, params)
    workers = workers or default_workers()
    chunk = 25
    batches = [
        (
            list(range(i, min(i + chunk, n))),
            params.seed,
            params.image_size,
            params.captions_per_image,
        )
        for i in range(0, n, chunk)
    ]
    with atomic_dir(out_dir) as tmp:
        images_dir = tmp / "images"
        images_dir.mkdir()
        rows: list[tuple[str, str, str, str]] = []
        with (
            contextlib.ExitStack() as stack,
            tqdm(total=n, desc="synth", unit="img", disable=not progress) as bar,
        ):
            if workers == 1:
                results = map(_render_batch, batches)
            else:
                pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers))
                results = pool.map(_render_batch, batches)
            index = 0
            for batch in results:
                for label, jpeg, captions in batch:
                    name = f"{label}_{index:05d}.jpg"
                    (images_dir / name).write_bytes(jpeg)
                    rows.extend((name, caption, splits[index], label) for caption in captions)
                    index += 1
                    bar.update(1)
        with (tmp / CAPTIONS_FILE).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("image", "caption", "split", "label"))
            writer.writerows(rows)
        info = json.dumps(synth_info(params), indent=2) + "\n"
        (tmp / SYNTH_INFO_FILE).write_text(info, encoding="utf-8")
    counts = {s: splits.count(s) for s in ("train", "val", "test")}
    return SynthSummary(out_dir, n, len(rows), time.perf_counter() - start, counts)
