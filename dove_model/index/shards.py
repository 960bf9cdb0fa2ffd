"""Sharded index builds: ``dove index build --shard I/N`` and ``dove index merge``.

An image belongs to shard ``sha256(image_id) mod N``: the choice depends on the id alone, so
adding images to the archive never moves an existing image to another shard, and every image
is in exactly one of the N shards. A shard folder holds what the encoder produced for its
images; the merge concatenates the shards, builds the vector indexes over all of them and
writes the same index folder as a single-process build (``archive.py``).

Layout of a shard folder (written atomically)::

    shard.json         shard format, I and N, the model family and fingerprint, images root,
                       sizes
    v_m.npy            global image embeddings, float32 (the vector index is built from them)
    v_mr.npy r.npy     per-image re-rank arrays, float16 (as the index folder stores them)
    t_g.npy            global caption embeddings, float32 (absent when there are no captions)
    images.parquet     image_id, path, label, sha256 (of the file), source_row (the image's row
                       in the whole archive)
    captions.parquet   caption, image_row (row in this shard), source_row
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dove_model.atomic import atomic_dir
from dove_model.config import IndexParams, Params
from dove_model.errors import ConfigError
from dove_model.index.archive import DEFAULT_FAMILY, read_versioned_meta, write_archive
from dove_model.index.build import (
    ArchiveSource,
    encode_archive,
    resolve_source,
    with_content_hashes,
)
from dove_model.index.encoder import ImageArrays, family_of
from dove_model.model.encoding import Encoder

SHARD_FORMAT = 1
SHARD_META = "shard.json"
_SHARD_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (0-based, as ``JOB_COMPLETION_INDEX``) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        match = _SHARD_SPEC.match(text)
        if not match:
            raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4")
        index, count = int(match[1]), int(match[2])
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"--shard {text!r}: need N >= 1 and 0 <= I < N")
        return cls(index, count)

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"


def shard_of(image_id: str, count: int) -> int:
    """The shard of ``image_id`` among ``count``: stable across runs, machines and archives."""
    digest = hashlib.sha256(str(image_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(
    source: ArchiveSource, shard: ShardSpec
) -> tuple[ArchiveSource, np.ndarray, np.ndarray]:
    """The shard's images and captions, and their rows (images, captions) in the archive."""
    ids = source.images["image_id"].astype(str)
    keep = np.array([shard_of(i, shard.count) == shard.index for i in ids], dtype=bool)
    rows = np.flatnonzero(keep)
    new_row = np.full(len(keep), -1, dtype=np.int64)
    new_row[rows] = np.arange(len(rows))
    images = source.images.iloc[rows].reset_index(drop=True)
    caption_rows = source.captions["image_row"].to_numpy(dtype=np.int64)
    kept_captions = np.flatnonzero(keep[caption_rows]) if len(caption_rows) else caption_rows
    captions = source.captions.iloc[kept_captions].reset_index(drop=True)
    captions = captions.assign(image_row=new_row[caption_rows[kept_captions]])
    return replace(source, images=images, captions=captions), rows, kept_captions


def build_shard_with(
    encoder: Encoder,
    source: Path | str,
    params: Params,
    out_dir: Path | str,
    shard: ShardSpec,
    *,
    model_info: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Encode shard ``shard`` of ``source`` into the shard folder ``out_dir``."""
    archive = resolve_source(source, params.index.splits)
    sliced, image_rows, caption_rows = select_shard(archive, shard)
    sliced = with_content_hashes(sliced)  # carried through the merge for `dove index add`
    if len(sliced.images):
        arrays, t_g = encode_archive(encoder, sliced, params.index.batch_size, progress=progress)
    else:  # a tiny archive split many ways: an empty shard still counts for the merge
        empty = np.zeros((0, 0), np.float32)
        arrays, t_g = ImageArrays(empty, empty, empty), None
    meta = {
        "shard_format": SHARD_FORMAT,
        "shard": shard.index,
        "shards": shard.count,
        "family": family_of(encoder),
        "model_fingerprint": str(encoder.fingerprint),
        "model": model_info or {},
        "images_root": str(archive.root),
        "source_kind": archive.kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_images": len(sliced.images),
        "n_captions": len(sliced.captions),
    }
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        np.save(tmp / "v_m.npy", np.asarray(arrays.v_m, dtype=np.float32))
        np.save(tmp / "v_mr.npy", np.asarray(arrays.v_mr, dtype=np.float16))
        np.save(tmp / "r.npy", np.asarray(arrays.r, dtype=np.float16))
        if t_g is not None:
            np.save(tmp / "t_g.npy", np.asarray(t_g, dtype=np.float32))
        sliced.images.assign(source_row=image_rows).to_parquet(tmp / "images.parquet", index=False)
        sliced.captions.assign(source_row=np.asarray(caption_rows, np.int64)).to_parquet(
            tmp / "captions.parquet", index=False
        )
        (tmp / SHARD_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out_dir


def build_shard(
    model_dir: Path | str,
    source: Path | str,
    params: Params,
    out_dir: Path | str,
    shard: ShardSpec,
    *,
    model_info: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """``dove index build --shard I/N``: one shard with the model in ``model_dir``."""
    from dove_model.families.dispatch import load_encoder

    encoder = load_encoder(Path(model_dir), "cpu", params.index.tower_precision)
    return build_shard_with(
        encoder, source, params, out_dir, shard, model_info=model_info, progress=progress
    )


@dataclass(frozen=True)
class Shard:
    """A shard folder read back into memory."""

    folder: Path
    meta: dict[str, Any]
    images: pd.DataFrame  # image_id, path, label, source_row
    captions: pd.DataFrame  # caption, image_row, source_row
    arrays: ImageArrays
    t_g: np.ndarray | None


def read_shard(folder: Path | str) -> Shard:
    folder = Path(folder)
    meta = read_versioned_meta(
        folder / SHARD_META,
        missing="not a shard folder (run `dove index build --shard I/N`)",
        version_key="shard_format",
        version=SHARD_FORMAT,
        kind="a shard",
    )
    try:
        arrays = ImageArrays(*(np.load(folder / f"{n}.npy") for n in ("v_m", "v_mr", "r")))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{folder}: shard array missing ({Path(str(exc.filename)).name})"
        ) from None
    t_g_file = folder / "t_g.npy"
    return Shard(
        folder=folder,
        meta=meta,
        images=pd.read_parquet(folder / "images.parquet"),
        captions=pd.read_parquet(folder / "captions.parquet"),
        arrays=arrays,
        t_g=np.load(t_g_file) if t_g_file.is_file() else None,
    )


def check_shards(shards: Sequence[Shard]) -> None:
    """One model, one archive, no image twice, and every shard of N present."""
    if not shards:
        raise ConfigError("dove index merge: no shard folders given")
    first = shards[0]
    for shard in shards[1:]:
        for key, what, width in (("model_fingerprint", "model", 12), ("images_root", "archive", 0)):
            if shard.meta[key] != first.meta[key]:
                mine, theirs = str(shard.meta[key]), str(first.meta[key])
                raise ConfigError(
                    f"{shard.folder}: built from {what} {mine[: width or None]}, but "
                    f"{first.folder} from {theirs[: width or None]}; rebuild the shards "
                    "with one model from one archive"
                )
    folders = [s.folder.resolve() for s in shards]
    if len(set(folders)) < len(folders):
        twice = next(f for f in folders if folders.count(f) > 1)
        raise ConfigError(f"dove index merge: shard folder {twice} given twice")
    seen: dict[str, Path] = {}
    for shard in shards:
        for image_id in shard.images["image_id"].astype(str):
            if image_id in seen:
                raise ConfigError(
                    f"{shard.folder}: image id {image_id!r} is also in {seen[image_id]}; "
                    "each image must be in exactly one shard"
                )
            seen[image_id] = shard.folder
    counts = {int(s.meta["shards"]) for s in shards}
    if len(counts) > 1:
        raise ConfigError(f"dove index merge: shards of different N ({sorted(counts)})")
    count = counts.pop()
    missing = sorted(set(range(count)) - {int(s.meta["shard"]) for s in shards})
    if missing:
        raise ConfigError(
            f"dove index merge: shards {', '.join(f'{i}/{count}' for i in missing)} missing"
        )


def _concatenate(
    shards: Sequence[Shard],
) -> tuple[pd.DataFrame, pd.DataFrame, ImageArrays, np.ndarray | None]:
    """All shards in the archive's own order (by source row), captions re-pointed."""
    full = [s for s in shards if len(s.images)]
    if not full:
        raise ConfigError("dove index merge: the shards hold no images")
    offsets = np.cumsum([0, *(len(s.images) for s in full)])[:-1]
    images = pd.concat([s.images for s in full], ignore_index=True)
    order = np.lexsort((images["image_id"].astype(str), images["source_row"]))
    new_row = np.empty(len(order), dtype=np.int64)
    new_row[order] = np.arange(len(order))
    captions = pd.concat(
        [
            s.captions.assign(image_row=s.captions["image_row"] + o)
            for s, o in zip(full, offsets, strict=True)
        ],
        ignore_index=True,
    )
    captions["image_row"] = new_row[captions["image_row"].to_numpy(dtype=np.int64)]
    caption_order = np.lexsort((captions["image_row"], captions["source_row"]))
    arrays = ImageArrays(
        *(np.concatenate([getattr(s.arrays, n) for s in full])[order] for n in ("v_m", "v_mr", "r"))
    )
    t_g_parts = [s.t_g for s in full if s.t_g is not None]
    t_g = np.concatenate(t_g_parts)[caption_order] if t_g_parts else None
    images = images.iloc[order].drop(columns="source_row").reset_index(drop=True)
    captions = captions.iloc[caption_order].drop(columns="source_row").reset_index(drop=True)
    return images, captions, arrays, t_g


def merge_shards(
    shard_dirs: Sequence[Path | str],
    params: IndexParams,
    out_dir: Path | str,
    *,
    versioned: bool | None = None,
) -> Path:
    """``dove index merge``: check the shards, then write one index folder over all of them
    (a new version of ``out_dir`` when ``versioned``: see ``write_archive``)."""
    shards = [read_shard(folder) for folder in shard_dirs]
    check_shards(shards)
    images, captions, arrays, t_g = _concatenate(shards)
    first = shards[0].meta
    meta = {
        "family": first.get("family", DEFAULT_FAMILY),
        "model_fingerprint": first["model_fingerprint"],
        "model": first.get("model", {}),
        "images_root": first["images_root"],
        "source_kind": first.get("source_kind"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "merged_from_shards": int(first["shards"]),
    }
    return write_archive(
        Path(out_dir),
        arrays=arrays,
        images=images,
        captions=captions,
        caption_embeddings=t_g,
        params=params,
        meta=meta,
        versioned=versioned,
    )
