"""The per-image table of the image suite: manifest facts + file facts + leakage flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dove_model.quality.image_stats import image_facts


def image_table(
    manifest: pd.DataFrame,
    dataset_dir: Path,
    *,
    sample: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per image id. ``sample`` decodes only that many images (all are hashed)."""
    grouped = manifest.groupby("image_id", sort=False)
    images = grouped.agg(
        image_path=("image_path", "first"),
        split=("split", "first"),
        n_splits=("split", "nunique"),
        splits=("split", lambda s: ",".join(sorted(set(s)))),
        sha256=("sha256", "first"),
        n_captions=("caption_id", "size"),
    ).reset_index()
    decode = [True] * len(images)
    if sample is not None and sample < len(images):
        chosen = set(np.random.default_rng(0).choice(len(images), sample, replace=False).tolist())
        decode = [i in chosen for i in range(len(images))]
    paths = [dataset_dir / str(p) for p in images["image_path"]]
    facts = image_facts(paths, decode=decode, workers=workers, progress=progress)
    table = pd.concat([images, facts], axis=1)
    table["ref"] = "image " + table["image_id"].astype(str)
    table["in_several_splits"] = _in_several_splits(table)
    return table


def _in_several_splits(table: pd.DataFrame) -> pd.Series:
    """True where the image id, or the same bytes (sha256), belongs to more than one split."""
    digest = table["sha256_actual"].fillna(table["sha256"])
    splits_per_digest = table.assign(digest=digest).groupby("digest")["split"].nunique()
    by_bytes = digest.map(splits_per_digest).fillna(1) > 1
    return ((table["n_splits"] > 1) | by_bytes).astype(bool)
