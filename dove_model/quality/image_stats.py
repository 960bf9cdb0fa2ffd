"""Per-image facts the image suite checks: exists, decodes, mode, size, pixel std, sha256.

Fast enough for the gate to run on every pipeline run: each file is read once (the sha256 is
computed from the same bytes), JPEGs are decoded in draft mode (the DCT scaled down 8x, which
still reads every byte, so truncation is caught) and the work is spread over a process pool.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, ImageStat
from tqdm import tqdm

DRAFT_SCALE = 8  # the smallest JPEG DCT scaling: 256 px -> 32 px
CHUNK = 64


@dataclass(frozen=True)
class ImageFacts:
    file_exists: bool
    sha256_actual: str | None = None
    decode_ok: bool | None = None  # None: not decoded (missing file or not sampled)
    decode_error: str | None = None
    mode: str | None = None
    actual_width: int | None = None
    actual_height: int | None = None
    pixel_std: float | None = None  # the largest per-channel standard deviation


def inspect_image(path: str, decode: bool = True) -> ImageFacts:
    """Read ``path`` once: hash the bytes, then decode them (reduced) for the pixel statistics."""
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ImageFacts(file_exists=False)
    digest = hashlib.sha256(data).hexdigest()
    if not decode:
        return ImageFacts(file_exists=True, sha256_actual=digest)
    try:
        with Image.open(io.BytesIO(data)) as img:
            mode, (width, height) = img.mode, img.size
            if img.format == "JPEG":
                img.draft("RGB", (max(1, width // DRAFT_SCALE), max(1, height // DRAFT_SCALE)))
            img.load()
            flat = img if img.mode in ("RGB", "L") else img.convert("RGB")
            # blank = every channel flat (the pooled std would call a uniform colour varied);
            # ImageStat works from the per-band histograms, in C
            std = float(max(ImageStat.Stat(flat).stddev))
    except Exception as exc:  # PIL raises many types for broken files; all mean "does not decode"
        return ImageFacts(True, digest, False, f"{type(exc).__name__}: {exc}")
    return ImageFacts(True, digest, True, None, mode, width, height, std)


def _inspect_chunk(args: tuple[list[str], list[bool]]) -> list[ImageFacts]:
    paths, decode = args
    return [inspect_image(p, d) for p, d in zip(paths, decode, strict=True)]


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def image_facts(
    paths: list[Path],
    *,
    decode: list[bool] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row of :class:`ImageFacts` per path, in order."""
    decode = decode if decode is not None else [True] * len(paths)
    names = [str(p) for p in paths]
    chunks = [(names[i : i + CHUNK], decode[i : i + CHUNK]) for i in range(0, len(names), CHUNK)]
    workers = workers or default_workers()
    facts: list[ImageFacts] = []
    with tqdm(total=len(paths), desc="inspect images", unit="img", disable=not progress) as bar:
        if workers == 1 or len(chunks) == 1:
            results = map(_inspect_chunk, chunks)
            for part in results:
                facts.extend(part)
                bar.update(len(part))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for part in pool.map(_inspect_chunk, chunks):
                    facts.extend(part)
                    bar.update(len(part))
    frame = pd.DataFrame([asdict(f) for f in facts], columns=list(ImageFacts.__dataclass_fields__))
    return frame.astype(
        {
            "file_exists": "boolean",
            "sha256_actual": "string",
            "decode_ok": "boolean",
            "decode_error": "string",
            "mode": "string",
            "actual_width": "Int64",
            "actual_height": "Int64",
            "pixel_std": "Float64",
        }
    )
