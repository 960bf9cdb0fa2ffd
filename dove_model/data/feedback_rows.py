"""Feedback pairs become captions of the dataset (``dove feedback export`` writes them into the
DVC-tracked ``data/``; ``prepare`` adds them to the manifest).

A pair marked relevant whose image is in the train split becomes one more train caption of
that image; every other pair (images of val/test: the feedback gate's held-out set; marks
"not relevant": hard negatives) stays out of the manifest. ``feedback_provenance.parquet``
beside the manifest maps each added caption id to the pair (query id, mark, time, model)
it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dove_model.atomic import atomic_path, write_text
from dove_model.data.manifest import coerce_manifest, read_manifest, write_manifest
from dove_model.hashing import sha256_file

PAIRS_FILE = "pairs.parquet"
PROVENANCE_FILE = "feedback_provenance.parquet"
TRAIN, EVAL = "train", "eval"  # a pair's role
STAMP_NOTE = (
    "rewritten by `dove feedback export`; the prepare stage's DVC dependency on the exported "
    "feedback (docs/operations.md, section 3): commit it with data.dvc"
)


def feedback_rows(manifest: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Manifest rows for the pairs that train: relevant, role train, image in the train split
    (checked again here: a pair file from elsewhere cannot leak into evaluation)."""
    train_images = manifest.loc[manifest["split"] == "train"].drop_duplicates("image_id")
    wanted = pairs[pairs["relevant"].astype(bool) & (pairs["role"] == TRAIN)]
    rows = wanted[["pair_id", "image_id", "caption"]].merge(
        train_images.drop(columns=["caption", "caption_id", "source_line"]), on="image_id"
    )
    start = int(manifest["caption_id"].max()) + 1 if len(manifest) else 0
    rows = rows.assign(caption_id=range(start, start + len(rows)), source_line=pd.NA)
    return rows


def add_feedback(dataset_dir: Path | str, feedback_dir: Path | str) -> int:
    """Append the feedback captions to ``dataset_dir``'s manifest (a no-op without a pair file);
    returns how many were added."""
    pairs_file = Path(feedback_dir) / PAIRS_FILE
    if not pairs_file.is_file():
        return 0
    manifest = read_manifest(dataset_dir)
    rows = feedback_rows(manifest, pd.read_parquet(pairs_file))
    if rows.empty:
        return 0
    merged = pd.concat([manifest, coerce_manifest(rows.drop(columns=["pair_id"]))])
    write_manifest(coerce_manifest(merged), dataset_dir)
    provenance = rows[["caption_id", "pair_id"]].merge(pd.read_parquet(pairs_file), on="pair_id")
    with atomic_path(Path(dataset_dir) / PROVENANCE_FILE, suffix=".parquet") as tmp:
        provenance.to_parquet(tmp, index=False)
    return len(rows)


def write_stamp(stamp: Path | str, pairs_file: Path, n_pairs: int) -> None:
    """Record the exported pair file (its sha256) in ``stamp``, outside the DVC-tracked data:
    ``dvc.yaml``'s prepare stage lists it, so the next ``dvc repro`` re-prepares. The same
    pairs write the same bytes: an export with nothing new re-runs nothing."""
    record = {
        "note": STAMP_NOTE,
        "pairs_file": Path(pairs_file).as_posix(),
        "pairs_sha256": sha256_file(Path(pairs_file)),
        "pairs": n_pairs,
    }
    write_text(stamp, json.dumps(record, indent=2) + "\n")
