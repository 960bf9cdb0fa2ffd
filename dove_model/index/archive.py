"""The archive index on disk and in memory.

Layout of an index folder (written atomically, read with memory maps)::

    meta.json          format version, the model family ("dove" | "dual"; absent in indexes
                       written before families existed: "dove") and fingerprint that built
                       it, sizes, kinds
    images.faiss       global image embeddings V_M (candidate search, text -> image)
    captions.faiss     global caption embeddings T_G (candidate search, image -> text)
    v_m.npy v_mr.npy r.npy   per-image arrays for the ROAM re-rank, float16, (N, D); a dual
                       model's v_mr and r are zero-width (N, 0): a header, no bytes
    images.parquet     row -> image_id, path (relative to meta.images_root), label, sha256 (of
                       the image file; `dove index add` matches on it; older indexes lack it)
    captions.parquet   row -> caption, image_row
    geo.parquet        row -> footprint, datetime, crs, gsd, ... (GeoParquet; only when the
                       indexed dataset has a ``chips.parquet``: see ``geo_meta.py``)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
import pandas as pd

from dove_model.atomic import atomic_dir
from dove_model.config import IndexParams
from dove_model.errors import ConfigError
from dove_model.families.registry import LEGACY_FAMILY, family_names
from dove_model.index.encoder import ImageArrays
from dove_model.index.geo_meta import geo_for_index, read_geo, write_geo
from dove_model.index.vectors import (
    build_vector_index,
    index_kind,
    load_vector_index,
    save_vector_index,
)
from dove_model.index.versions import current_index_dir, is_versioned, publish, publish_target

if TYPE_CHECKING:
    import geopandas as gpd

FORMAT_VERSION = 1
META_FILE = "meta.json"
IMAGE_ARRAYS = ("v_m", "v_mr", "r")
DEFAULT_FAMILY = LEGACY_FAMILY  # what an index without a recorded family was built by


class IndexMismatchError(ConfigError):
    """The index was built by another model than the one being served."""


@dataclass(frozen=True)
class ArchiveIndex:
    """A loaded archive: vector indexes plus memory-mapped per-image arrays."""

    folder: Path
    meta: dict[str, Any]
    images: pd.DataFrame  # image_id, path, label
    captions: pd.DataFrame  # caption, image_row
    image_index: faiss.Index
    caption_index: faiss.Index | None
    arrays: ImageArrays  # float16 memory maps
    version: str | None = None  # the version id, when loaded through a versioned root
    geo: gpd.GeoDataFrame | None = None  # per-image footprints etc. (geo.parquet), if any

    @property
    def fingerprint(self) -> str:
        return str(self.meta["model_fingerprint"])

    @property
    def family(self) -> str:
        return str(self.meta.get("family") or DEFAULT_FAMILY)

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    @property
    def images_root(self) -> Path:
        return Path(self.meta.get("images_root") or self.folder)

    def image_file(self, row: int) -> Path:
        return self.images_root / str(self.images.iloc[row]["path"])

    def rerank_arrays(self, rows: np.ndarray) -> ImageArrays:
        """The candidates' arrays as float32 (reads only those rows from the memory maps)."""
        return ImageArrays(
            v_m=np.asarray(self.arrays.v_m[rows], dtype=np.float32),
            v_mr=np.asarray(self.arrays.v_mr[rows], dtype=np.float32),
            r=np.asarray(self.arrays.r[rows], dtype=np.float32),
        )

    def check_model(self, fingerprint: str, family: str = DEFAULT_FAMILY) -> None:
        """Refuse to serve with a model other than the one that built this index: another
        family (its vectors mean something else, its re-rank arrays are another shape), or
        another model of the same family (another fingerprint)."""
        if family != self.family:
            raise IndexMismatchError(
                f"{self.folder / META_FILE}: index was built by a {self.family} model "
                f"({self.fingerprint[:12]}), but the service loaded a {family} model "
                f"({fingerprint[:12]}); rebuild it with `dove index build` and this model"
            )
        if fingerprint != self.fingerprint:
            raise IndexMismatchError(
                f"{self.folder / META_FILE}: index was built by model {self.fingerprint[:12]}, "
                f"but the service loaded model {fingerprint[:12]}; rebuild it with "
                "`dove index build`"
            )


def write_archive(
    out_dir: Path,
    *,
    arrays: ImageArrays,
    images: pd.DataFrame,
    captions: pd.DataFrame,
    caption_embeddings: np.ndarray | None,
    params: IndexParams,
    meta: dict[str, Any],
    versioned: bool | None = None,
    prebuilt: dict[str, faiss.Index] | None = None,
) -> Path:
    """Write an index folder atomically; ``meta`` must hold ``model_fingerprint`` and names the
    ``family`` (default ``dove``). Returns ``out_dir``. ``prebuilt``: ready vector indexes
    (``"images"``, ``"captions"``) holding exactly these rows, used instead of building them.

    ``versioned``: True writes a new version under the index root ``out_dir``, flips its
    ``CURRENT`` pointer and keeps ``params.keep_versions`` older versions; False replaces the
    plain folder ``out_dir``; None (default) does the first when ``out_dir`` already is a
    versioned root, else the second."""
    if versioned if versioned is not None else is_versioned(out_dir):
        target, version = publish_target(out_dir)
        _write_folder(target, arrays, images, captions, caption_embeddings, params, meta, prebuilt)
        publish(out_dir, version, params.keep_versions)
        return Path(out_dir)
    return _write_folder(
        Path(out_dir), arrays, images, captions, caption_embeddings, params, meta, prebuilt
    )


def _write_folder(
    out_dir: Path,
    arrays: ImageArrays,
    images: pd.DataFrame,
    captions: pd.DataFrame,
    caption_embeddings: np.ndarray | None,
    params: IndexParams,
    meta: dict[str, Any],
    prebuilt: dict[str, faiss.Index] | None = None,
) -> Path:
    prebuilt = prebuilt or {}
    if "model_fingerprint" not in meta:
        raise ValueError("meta must record the model fingerprint")
    family = str(meta.get("family") or DEFAULT_FAMILY)
    if family not in family_names():
        raise ValueError(f"unknown model family {family!r} (known: {', '.join(family_names())})")
    n = len(arrays)
    if len(images) != n:
        raise ValueError(f"{len(images)} image rows for {n} embeddings")
    with atomic_dir(out_dir) as tmp:
        image_index = prebuilt.get("images") or build_vector_index(arrays.v_m, params)
        save_vector_index(image_index, tmp / "images.faiss")
        caption_kind = None
        if caption_embeddings is not None and len(caption_embeddings):
            caption_index = prebuilt.get("captions") or build_vector_index(
                caption_embeddings, params
            )
            save_vector_index(caption_index, tmp / "captions.faiss")
            caption_kind = index_kind(caption_index)
        for name in IMAGE_ARRAYS:
            np.save(tmp / f"{name}.npy", np.asarray(getattr(arrays, name), dtype=np.float16))
        images.reset_index(drop=True).to_parquet(tmp / "images.parquet", index=False)
        captions.reset_index(drop=True).to_parquet(tmp / "captions.parquet", index=False)
        geo = geo_for_index(meta["images_root"], images) if meta.get("images_root") else None
        if geo is not None:
            write_geo(tmp, geo)
        full_meta = {
            **meta,
            "family": family,
            "format_version": FORMAT_VERSION,
            "dim": int(arrays.v_m.shape[1]),
            "n_images": n,
            "n_captions": len(captions),
            "image_index": index_kind(image_index),
            "caption_index": caption_kind,
            "geo": geo is not None,
        }
        (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2), encoding="utf-8")
    return out_dir


def read_versioned_meta(
    path: Path, *, missing: str, version_key: str, version: int, kind: str
) -> dict[str, Any]:
    """A folder's JSON metadata: present (else ``missing``), valid, of ``version``, and naming
    the model that wrote it (index folders and shard folders share these checks)."""
    if not path.is_file():
        raise ConfigError(f"{path}: {missing}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON") from None
    if meta.get(version_key) != version or "model_fingerprint" not in meta:
        raise ConfigError(f"{path}: not {kind} of format version {version}")
    return meta


def read_meta(folder: Path) -> dict[str, Any]:
    return read_versioned_meta(
        Path(folder) / META_FILE,
        missing="index metadata not found (run `dove index build`)",
        version_key="format_version",
        version=FORMAT_VERSION,
        kind="an index",
    )


def load_archive(folder: Path | str, params: IndexParams) -> ArchiveIndex:
    """Open an index folder, or a versioned root's current version; the big arrays stay on
    disk (memory-mapped)."""
    folder, version = current_index_dir(folder)
    meta = read_meta(folder)
    loaded = {}
    for name in IMAGE_ARRAYS:
        path = folder / f"{name}.npy"
        if not path.is_file():
            raise ConfigError(f"{path}: index array missing")
        loaded[name] = np.load(path, mmap_mode="r")
    captions_file = folder / "captions.faiss"
    images = pd.read_parquet(folder / "images.parquet")
    return ArchiveIndex(
        folder=folder,
        meta=meta,
        images=images,
        captions=pd.read_parquet(folder / "captions.parquet"),
        image_index=load_vector_index(folder / "images.faiss", params),
        caption_index=(
            load_vector_index(captions_file, params) if captions_file.is_file() else None
        ),
        arrays=ImageArrays(**loaded),
        version=version,
        geo=read_geo(folder, len(images)),
    )


def check_archive(archive: ArchiveIndex) -> None:
    """Refuse an index whose parts disagree on their sizes (a half-copied or edited folder)."""
    meta = archive.meta
    sizes = {
        "meta n_images": meta.get("n_images"),
        "images.parquet": archive.n_images,
        "images.faiss": archive.image_index.ntotal,
        **{f"{name}.npy": len(getattr(archive.arrays, name)) for name in IMAGE_ARRAYS},
    }
    caption_sizes = {
        "meta n_captions": meta.get("n_captions"),
        "captions.parquet": archive.n_captions,
    }
    if archive.caption_index is not None:
        caption_sizes["captions.faiss"] = archive.caption_index.ntotal
    for group in (sizes, caption_sizes):
        if len({int(v) if v is not None else -1 for v in group.values()}) != 1:
            found = ", ".join(f"{k} {v}" for k, v in group.items())
            raise ConfigError(f"{archive.folder}: inconsistent index sizes ({found})")
    if archive.image_index.d != int(meta.get("dim", archive.image_index.d)):
        raise ConfigError(f"{archive.folder}: images.faiss has dim {archive.image_index.d}")
