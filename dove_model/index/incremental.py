"""``dove index add``: bring an index up to date with its archive, encoding only new images.

Images are matched by content (the sha256 of the image file, stored per image in
``images.parquet``): an image whose hash the index already holds keeps its stored arrays, one
whose hash it lacks is encoded, and an indexed image no longer in the archive is dropped.
Caption embeddings depend on the text alone, so only caption texts the index lacks are
encoded. Rows come out in the archive's own order and the vector indexes are rebuilt from the
stored float32 embeddings (read back from the FAISS files), so the result is the index a full
build of the grown archive writes, at the cost of hashing the files and encoding what is new.

An index built by another model (fingerprint) or without per-image hashes (built before this
command existed) is refused: it needs one full ``dove index build``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from dove_model.config import Params
from dove_model.errors import ConfigError
from dove_model.index.archive import (
    DEFAULT_FAMILY,
    IMAGE_ARRAYS,
    ArchiveIndex,
    load_archive,
    write_archive,
)
from dove_model.index.build import (
    ArchiveSource,
    encode_captions,
    encode_images,
    resolve_source,
    with_content_hashes,
)
from dove_model.index.encoder import ImageArrays, family_of
from dove_model.index.vectors import choose_kind, index_kind, is_compressed
from dove_model.model.encoding import Encoder


class RebuildNeededError(ConfigError):
    """The index cannot be updated in place: a full ``dove index build`` is needed."""


@dataclass(frozen=True)
class UpdateReport:
    """What ``update_index_with`` did."""

    folder: Path
    added: int  # images encoded (content the index did not hold)
    removed: int  # indexed images no longer in the archive
    kept: int  # images whose stored arrays were reused
    captions_encoded: int  # caption texts the index did not hold


def check_updatable(archive: ArchiveIndex, fingerprint: str, family: str = DEFAULT_FAMILY) -> None:
    """Refuse another model's index and an index without per-image content hashes."""
    if str(fingerprint) != archive.fingerprint or family != archive.family:
        raise RebuildNeededError(
            f"{archive.folder}: index was built by {archive.family} model "
            f"{archive.fingerprint[:12]}, the encoder is {family} model {str(fingerprint)[:12]}; "
            "a model change needs a full rebuild (`dove index build`)"
        )
    hashes = archive.images.get("sha256")
    if hashes is None or hashes.isna().any():
        raise RebuildNeededError(
            f"{archive.folder}: index has no per-image content hashes (built before "
            "`dove index add` existed); rebuild it once with `dove index build`, later updates "
            "can then be incremental"
        )


def stored_embeddings(index: faiss.Index) -> np.ndarray:
    """The float32 vectors a (flat, HNSW-flat or IVF-flat) FAISS index holds, row i = id i."""
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()
    if index.ntotal == 0:
        return np.zeros((0, index.d), np.float32)
    return np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)


def global_embeddings(archive: ArchiveIndex) -> np.ndarray:
    """V_M as a full build indexes it: read back from a float index (float32); from the stored
    float16 ``v_m.npy`` for a compressed one (``ivf_pq``, ``hnsw_sq8``), whose reconstructions
    are decoded codes: re-training on those would compound the quantisation error per update."""
    if is_compressed(archive.image_index):
        return archive.arrays.v_m
    return stored_embeddings(archive.image_index)


def match_rows(indexed: pd.Series, archive: pd.Series) -> np.ndarray:
    """For each archive hash, the index row holding that content, or -1 when it is new."""
    row_of: dict[str, int] = {}
    for row, digest in enumerate(indexed.astype(str)):
        row_of.setdefault(digest, row)
    return np.array([row_of.get(d, -1) for d in archive.astype(str)], dtype=np.int64)


def _image_arrays(
    archive: ArchiveIndex,
    source: ArchiveSource,
    old_rows: np.ndarray,
    encoder: Encoder,
    params: Params,
    progress: bool,
) -> ImageArrays:
    """Stored arrays for known content, freshly encoded ones for new content, archive order."""
    new = np.flatnonzero(old_rows < 0)
    kept = np.flatnonzero(old_rows >= 0)
    stored = {
        "v_m": global_embeddings(archive),
        "v_mr": archive.arrays.v_mr,
        "r": archive.arrays.r,
    }
    encoded = None
    if len(new):
        paths = [source.root / p for p in source.images["path"].iloc[new]]
        encoded = encode_images(encoder, paths, params.index.batch_size, progress=progress)
    out = {}
    for name in IMAGE_ARRAYS:  # each its own width: a dual model's re-rank arrays have none
        width = getattr(encoded, name).shape[1] if encoded is not None else stored[name].shape[1]
        values = np.empty((len(old_rows), int(width)), np.float32)
        values[kept] = np.asarray(stored[name][old_rows[kept]], dtype=np.float32)
        if encoded is not None:
            values[new] = getattr(encoded, name)
        out[name] = values
    return ImageArrays(**out)


def _caption_embeddings(
    archive: ArchiveIndex, source: ArchiveSource, encoder: Encoder, params: Params, progress: bool
) -> tuple[np.ndarray | None, int]:
    """T_G for every caption of ``source``: stored by text where the index has it, else encoded."""
    texts = source.captions["caption"].astype(str).tolist()
    if not texts:
        return None, 0
    row_of: dict[str, int] = {}
    known = np.zeros((0, 0), np.float32)
    # a compressed caption index holds decoded codes, not the embeddings: re-encode its texts
    if archive.caption_index is not None and not is_compressed(archive.caption_index):
        known = stored_embeddings(archive.caption_index)
        for row, text in enumerate(archive.captions["caption"].astype(str)):
            row_of.setdefault(text, row)
    missing = list(dict.fromkeys(t for t in texts if t not in row_of))
    fresh = encode_captions(encoder, missing, params.index.batch_size, progress=progress)
    if fresh is not None:
        known = fresh if not len(known) else np.concatenate([known, fresh])
        offset = len(known) - len(fresh)
        row_of.update({text: offset + i for i, text in enumerate(missing)})
    return known[[row_of[t] for t in texts]], len(missing)


def update_index_with(
    encoder: Encoder,
    index_dir: Path | str,
    source: Path | str,
    params: Params,
    out_dir: Path | str | None = None,
    *,
    progress: bool = True,
    versioned: bool | None = None,
) -> UpdateReport:
    """Write ``out_dir`` (default: ``index_dir``) for the archive ``source``, encoding only
    images and caption texts ``index_dir`` does not hold. A versioned root (or ``versioned``)
    gets a new version and its pointer flipped: the version being served is never touched; a
    plain folder is replaced atomically (see ``write_archive``)."""
    index_dir = Path(index_dir)
    archive = load_archive(index_dir, params.index)
    check_updatable(archive, encoder.fingerprint, family_of(encoder))
    grown = with_content_hashes(resolve_source(source, params.index.splits))
    old_rows = match_rows(archive.images["sha256"], grown.images["sha256"])
    arrays = _image_arrays(archive, grown, old_rows, encoder, params, progress)
    t_g, captions_encoded = _caption_embeddings(archive, grown, encoder, params, progress)
    gone = ~archive.images["sha256"].astype(str).isin(set(grown.images["sha256"].astype(str)))
    report = UpdateReport(
        folder=Path(out_dir) if out_dir is not None else index_dir,
        added=int((old_rows < 0).sum()),
        removed=int(gone.sum()),
        kept=int((old_rows >= 0).sum()),
        captions_encoded=captions_encoded,
    )
    meta: dict[str, Any] = {
        "family": archive.family,
        "model_fingerprint": archive.fingerprint,
        "model": archive.meta.get("model", {}),
        "images_root": str(grown.root),
        "source_kind": grown.kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "incremental": {
            "from": str(archive.folder.resolve()),
            "added": report.added,
            "removed": report.removed,
            "kept": report.kept,
        },
    }
    prebuilt = appended_indexes(archive, grown, old_rows, arrays.v_m, t_g, params)
    meta["incremental"]["appended"] = sorted(prebuilt)
    write_archive(
        report.folder,
        arrays=arrays,
        images=grown.images,
        captions=grown.captions,
        caption_embeddings=t_g,
        params=params.index,
        meta=meta,
        versioned=versioned,
        prebuilt=prebuilt,
    )
    return report


def appended_indexes(
    archive: ArchiveIndex,
    grown: ArchiveSource,
    old_rows: np.ndarray,
    v_m: np.ndarray,
    t_g: np.ndarray | None,
    params: Params,
) -> dict[str, faiss.Index]:
    """The old vector indexes with only the new rows added, where the update merely appends.

    Rebuilding an HNSW index from every stored vector is most of an update's time at 100k
    images; when the archive kept every indexed row in its place and only added rows after
    them (nothing removed or reordered), the old index plus the new vectors is the same index,
    row for row. Compressed kinds and a change of kind (the archive crossed ``exact_max``)
    are rebuilt."""
    out: dict[str, faiss.Index] = {}
    n_old = len(archive.images)
    kept_in_place = len(old_rows) >= n_old and np.array_equal(old_rows[:n_old], np.arange(n_old))
    if kept_in_place and (old_rows[n_old:] < 0).all():
        grown_index = _appended(archive.image_index, v_m, n_old, params)
        if grown_index is not None:
            out["images"] = grown_index
    old_captions = archive.captions[["caption", "image_row"]].reset_index(drop=True)
    head = grown.captions[["caption", "image_row"]].head(len(old_captions)).reset_index(drop=True)
    same_head = len(grown.captions) >= len(old_captions) and head.astype(str).equals(
        old_captions.astype(str)
    )
    if "images" in out and same_head and archive.caption_index is not None and t_g is not None:
        grown_index = _appended(archive.caption_index, t_g, len(old_captions), params)
        if grown_index is not None:
            out["captions"] = grown_index
    return out


def _appended(
    index: faiss.Index, vectors: np.ndarray, n_old: int, params: Params
) -> faiss.Index | None:
    """A copy of ``index`` (holding ``vectors[:n_old]``) with ``vectors[n_old:]`` added, or
    None when the index must be rebuilt (compressed, or another kind at the new size)."""
    if is_compressed(index) or index.ntotal != n_old:
        return None
    if choose_kind(len(vectors), params.index) != index_kind(index):
        return None
    grown = faiss.clone_index(index)
    if len(vectors) > n_old:
        grown.add(np.ascontiguousarray(vectors[n_old:], dtype=np.float32))
    return grown


def update_index(
    model_dir: Path | str,
    index_dir: Path | str,
    source: Path | str,
    params: Params,
    out_dir: Path | str | None = None,
    *,
    progress: bool = True,
    versioned: bool | None = None,
) -> UpdateReport:
    """``dove index add`` with the model in ``model_dir``."""
    from dove_model.families.dispatch import load_encoder

    encoder = load_encoder(Path(model_dir), "cpu", params.index.tower_precision)
    return update_index_with(
        encoder, index_dir, source, params, out_dir, progress=progress, versioned=versioned
    )
