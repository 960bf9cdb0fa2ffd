"""``dove index build``: encode an image archive once into an index folder."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from dove_model.allocator import retain_freed_memory_if_enabled
from dove_model.config import Params
from dove_model.data.manifest import MANIFEST_FILE, read_manifest
from dove_model.errors import DataFormatError
from dove_model.hashing import sha256_file
from dove_model.index.archive import write_archive
from dove_model.index.encoder import ImageArrays, as_image_arrays, family_of
from dove_model.model.encoding import Encoder

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


@dataclass(frozen=True)
class ArchiveSource:
    """What to index: image files (relative to ``root``) and the captions that describe them."""

    root: Path
    images: pd.DataFrame  # image_id, path, label (+ sha256 after with_content_hashes)
    captions: pd.DataFrame  # caption, image_row
    kind: str  # "dataset" | "folder"


def with_content_hashes(source: ArchiveSource) -> ArchiveSource:
    """The source with each image's content hash (sha256 of the file's bytes): stored in the
    index, it is what ``dove index add`` matches images on."""
    hashes = [sha256_file(source.root / p) for p in source.images["path"]]
    return replace(source, images=source.images.assign(sha256=np.array(hashes, dtype=object)))


def resolve_source(source: Path | str, splits: Sequence[str] | None = None) -> ArchiveSource:
    """A prepared dataset (manifest.parquet) or a plain folder of images."""
    source = Path(source).resolve()
    if (source / MANIFEST_FILE).is_file():
        return _dataset_source(source, splits)
    if source.is_dir():
        return _folder_source(source)
    raise DataFormatError(f"{source}: neither a prepared dataset nor a folder of images")


def _dataset_source(dataset_dir: Path, splits: Sequence[str] | None) -> ArchiveSource:
    frame = read_manifest(dataset_dir)
    if splits:
        frame = frame[frame["split"].isin(list(splits))]
    frame = frame[frame["sha256"].notna()]
    if frame.empty:
        raise DataFormatError(f"{dataset_dir / MANIFEST_FILE}: no image files in {splits or 'any'}")
    first = frame.drop_duplicates("image_id")
    images = pd.DataFrame(
        {
            "image_id": first["image_id"].astype(str).to_numpy(),
            "path": first["image_path"].astype(str).to_numpy(),
            "label": first["label"].astype("string").to_numpy(),
        }
    )
    row_of = {image_id: i for i, image_id in enumerate(images["image_id"])}
    captioned = frame[frame["caption"].notna()]  # an image may have no caption (archive chips)
    captions = pd.DataFrame(
        {
            "caption": captioned["caption"].astype(str).to_numpy(),
            "image_row": np.array([row_of[str(i)] for i in captioned["image_id"]], dtype=np.int64),
        }
    )
    return ArchiveSource(root=dataset_dir, images=images, captions=captions, kind="dataset")


def _folder_source(folder: Path) -> ArchiveSource:
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataFormatError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    rel = [p.relative_to(folder).as_posix() for p in files]
    images = pd.DataFrame(
        {
            "image_id": rel,
            "path": rel,
            "label": pd.array([None] * len(rel), dtype="string"),
        }
    )
    captions = pd.DataFrame(
        {"caption": pd.Series(dtype=str), "image_row": pd.Series(dtype=np.int64)}
    )
    return ArchiveSource(root=folder, images=images, captions=captions, kind="folder")


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:
        raise DataFormatError(f"{path}: not a readable image ({exc})") from None


def encode_images(
    encoder: Encoder, paths: Sequence[Path], batch_size: int, *, progress: bool = True
) -> ImageArrays:
    """Image arrays (float32) for the image files ``paths``, in order."""
    parts: list[ImageArrays] = []
    with tqdm(total=len(paths), desc="encode images", unit="img", disable=not progress) as bar:
        for chunk in _batches(paths, batch_size):
            parts.append(as_image_arrays(encoder.encode_images([_open_rgb(p) for p in chunk])))
            bar.update(len(chunk))
    return ImageArrays(
        v_m=np.concatenate([p.v_m for p in parts]),
        v_mr=np.concatenate([p.v_mr for p in parts]),
        r=np.concatenate([p.r for p in parts]),
    )


def encode_captions(
    encoder: Encoder, texts: Sequence[str], batch_size: int, *, progress: bool = True
) -> np.ndarray | None:
    """Global caption embeddings T_G (float32) for ``texts``; None when there are none."""
    if not texts:
        return None
    t_g: list[np.ndarray] = []
    for chunk in tqdm(
        list(_batches(texts, max(batch_size, 256))),
        desc="encode captions",
        unit="batch",
        disable=not progress,
    ):
        t_g.append(np.asarray(encoder.encode_texts(list(chunk)).t_g, dtype=np.float32))
    return np.concatenate(t_g)


def encode_archive(
    encoder: Encoder, source: ArchiveSource, batch_size: int, *, progress: bool = True
) -> tuple[ImageArrays, np.ndarray | None]:
    """Image arrays for every image and global embeddings T_G for every caption."""
    retain_freed_memory_if_enabled()
    paths = [source.root / p for p in source.images["path"]]
    arrays = encode_images(encoder, paths, batch_size, progress=progress)
    texts = source.captions["caption"].astype(str).tolist()
    return arrays, encode_captions(encoder, texts, batch_size, progress=progress)


def build_index_with(
    encoder: Encoder,
    source: Path | str,
    params: Params,
    out_dir: Path | str,
    *,
    model_info: dict[str, Any] | None = None,
    progress: bool = True,
    versioned: bool | None = None,
) -> Path:
    """Encode ``source`` with ``encoder`` and write the index folder ``out_dir`` (a new
    version of it when ``versioned``: see ``write_archive``)."""
    archive = with_content_hashes(resolve_source(source, params.index.splits))
    arrays, caption_embeddings = encode_archive(
        encoder, archive, params.index.batch_size, progress=progress
    )
    meta = {
        "family": family_of(encoder),
        "model_fingerprint": str(encoder.fingerprint),
        "model": model_info or {},
        "images_root": str(archive.root),
        "source_kind": archive.kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return write_archive(
        Path(out_dir),
        arrays=arrays,
        images=archive.images,
        captions=archive.captions,
        caption_embeddings=caption_embeddings,
        params=params.index,
        meta=meta,
        versioned=versioned,
    )


def build_index(
    model_dir: Path | str,
    dataset_dir_or_folder: Path | str,
    params: Params,
    out_dir: Path | str,
    *,
    model_info: dict[str, Any] | None = None,
    progress: bool = True,
    versioned: bool | None = None,
) -> Path:
    """The deploy stage's index step (docs/contracts.md section 2)."""
    from dove_model.families.dispatch import load_encoder

    encoder = load_encoder(Path(model_dir), "cpu", params.index.tower_precision)
    return build_index_with(
        encoder,
        dataset_dir_or_folder,
        params,
        out_dir,
        model_info=model_info,
        progress=progress,
        versioned=versioned,
    )
