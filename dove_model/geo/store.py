"""Chip files, content-addressed: ``images/<aa>/<sha256>.<ext>``, named by the sha256 of the
encoded bytes, written once (temp file + hard link, so two writers never clobber each other
and a crash never leaves a partial file under a final name) and never rewritten."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dove_model.data.manifest import IMAGES_DIR

EXTENSIONS = {"png": "png", "jpeg": "jpg"}


@dataclass(frozen=True)
class StoredChip:
    sha256: str
    path: str  # relative to the dataset folder, POSIX
    written: bool  # False: the file was already there


def encode(pixels: np.ndarray, image_format: str, jpeg_quality: int = 90) -> bytes:
    """PNG (lossless; zlib level 1: level 6 is 2.5x slower for 0.2 % smaller chips) or JPEG
    bytes of (height, width, 1 | 3) uint8 ``pixels``; the same pixels give the same bytes."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    if image_format == "png":
        image.save(buffer, format="PNG", compress_level=1, optimize=False)
    else:
        image.save(buffer, format="JPEG", quality=jpeg_quality, optimize=False)
    return buffer.getvalue()


def chip_path(sha256: str, image_format: str) -> str:
    return f"{IMAGES_DIR}/{sha256[:2]}/{sha256}.{EXTENSIONS[image_format]}"


def store(out_dir: Path, data: bytes, image_format: str) -> StoredChip:
    """Write ``data`` under its content address unless a file is already there."""
    sha = hashlib.sha256(data).hexdigest()
    rel = chip_path(sha, image_format)
    target = out_dir / rel
    if target.exists():
        return StoredChip(sha, rel, written=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{sha[:16]}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.link(tmp_name, target)
        except FileExistsError:  # another worker wrote the same chip meanwhile
            return StoredChip(sha, rel, written=False)
        except OSError:  # no hard links here: a rename (same bytes if it raced)
            os.replace(tmp_name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    return StoredChip(sha, rel, written=True)
