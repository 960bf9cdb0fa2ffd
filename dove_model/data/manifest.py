"""The canonical dataset layout every stage reads.

A prepared dataset is a folder::

    <dataset>/images/...          image files (copied or hard-linked, never re-encoded)
    <dataset>/manifest.parquet    one row per caption (columns below)
    <dataset>/dataset.json        name, source format, counts (written by prepare)

Images without a file (e.g. RSICD captions-only) keep their rows with ``sha256`` null, so the
validation stage can report them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dove_model.atomic import atomic_path
from dove_model.errors import DataFormatError

MANIFEST_FILE = "manifest.parquet"
DATASET_INFO_FILE = "dataset.json"
IMAGES_DIR = "images"
SPLITS = ("train", "val", "test")

# column -> pandas dtype; nullable dtypes where a source may lack the value
MANIFEST_COLUMNS: dict[str, str] = {
    "image_id": "string",  # unique per image
    "image_path": "string",  # relative to the dataset folder, POSIX separators
    "caption_id": "int64",  # unique per caption
    "caption": "string",
    "split": "string",  # train | val | test
    "sha256": "string",  # of the image bytes; <NA> when the file is missing
    "width": "Int64",
    "height": "Int64",
    "label": "string",  # class label where the source has one
    "source_line": "Int64",  # 1-based line (or entry) in the source file, for messages
}


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in MANIFEST_COLUMNS.items()})


def coerce_manifest(frame: pd.DataFrame, source: str = "manifest") -> pd.DataFrame:
    """Check columns and cast to the canonical dtypes (missing optional columns -> null)."""
    required = ("image_id", "image_path", "caption_id", "caption", "split")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{source}: missing required column(s) {', '.join(missing)}")
    out = frame.copy()
    for column, dtype in MANIFEST_COLUMNS.items():
        if column not in out.columns:
            out[column] = pd.Series([pd.NA] * len(out), dtype=dtype)
        else:
            out[column] = out[column].astype(dtype)
    return out[list(MANIFEST_COLUMNS)].reset_index(drop=True)


def write_manifest(frame: pd.DataFrame, dataset_dir: Path | str) -> Path:
    target = Path(dataset_dir) / MANIFEST_FILE
    frame = coerce_manifest(frame)
    with atomic_path(target, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    return target


def read_manifest(dataset_dir: Path | str) -> pd.DataFrame:
    path = Path(dataset_dir) / MANIFEST_FILE
    if not path.is_file():
        raise DataFormatError(f"{path}: manifest not found (run `dove prepare` first)")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataFormatError(f"{path}: not a readable parquet manifest ({exc})") from None
    return coerce_manifest(frame, source=str(path))


@dataclass(frozen=True)
class SplitData:
    """One split, grouped by image: what training, evaluation and indexing consume.

    ``captions[j]`` belongs to image ``caption_image[j]``; any number of captions per image.
    """

    dataset_dir: Path
    image_ids: list[str]
    image_paths: list[Path]  # absolute
    labels: list[str | None]
    captions: list[str]
    caption_image: np.ndarray  # (n_captions,) int64 index into image_ids

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_captions(self) -> int:
        return len(self.captions)


def load_split(dataset_dir: Path | str, split: str, *, require_files: bool = True) -> SplitData:
    """Images of ``split`` in manifest order, with their captions.

    With ``require_files`` images whose file is missing are an error (training needs pixels).
    """
    dataset_dir = Path(dataset_dir).resolve()
    frame = read_manifest(dataset_dir)
    part = frame[frame["split"] == split]
    if part.empty:
        raise DataFormatError(f"{dataset_dir / MANIFEST_FILE}: split {split!r} has no rows")
    if require_files:
        missing = part.loc[part["sha256"].isna(), "image_id"].unique().tolist()
        if missing:
            shown = ", ".join(map(str, missing[:5]))
            raise DataFormatError(
                f"{dataset_dir}: {len(missing)} image file(s) of split {split!r} are missing "
                f"(e.g. {shown})"
            )
    order = pd.unique(part["image_id"])
    index_of = {image_id: i for i, image_id in enumerate(order)}
    first = part.drop_duplicates("image_id").set_index("image_id").loc[order]
    return SplitData(
        dataset_dir=dataset_dir,
        image_ids=[str(i) for i in order],
        image_paths=[dataset_dir / str(p) for p in first["image_path"]],
        labels=[None if pd.isna(v) else str(v) for v in first["label"]],
        captions=[str(c) for c in part["caption"]],
        caption_image=np.array([index_of[i] for i in part["image_id"]], dtype=np.int64),
    )
