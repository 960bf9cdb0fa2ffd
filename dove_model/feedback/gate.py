"""The feedback gate: a challenger must not be worse than the champion on the users' own
relevant pairs (the export's ``eval`` pairs: images outside the train split, never trained on).

The measure: text -> image recall R@1/5/10 (percent) of each pair's image among the gallery of
the evaluation splits' images, ranked by the global embeddings' cosine (DOVE's first stage;
the dual family's only one), and their mean ``mR_feedback``. The gate refuses a challenger
whose ``mR_feedback`` is more than ``max_regression`` points below the champion's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dove_model.data.feedback_rows import EVAL
from dove_model.data.manifest import read_manifest

KS = (1, 5, 10)


@dataclass(frozen=True)
class FeedbackRecall:
    n_pairs: int
    recall: dict[str, float]  # "R@1" ... in percent

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.recall.values()))) if self.recall else 0.0


def recall_at(
    text_emb: np.ndarray, image_emb: np.ndarray, targets: Sequence[int]
) -> dict[str, float]:
    """R@k (percent) of ``targets[i]`` (a row of ``image_emb``) for query ``text_emb[i]``."""
    t = text_emb / np.maximum(np.linalg.norm(text_emb, axis=1, keepdims=True), 1e-12)
    v = image_emb / np.maximum(np.linalg.norm(image_emb, axis=1, keepdims=True), 1e-12)
    scores = t @ v.T
    own = scores[np.arange(len(targets)), np.asarray(targets)]
    rank = (scores > own[:, None]).sum(axis=1)  # 0 = best; ties count in the pair's favour
    return {f"R@{k}": float(100.0 * (rank < k).mean()) for k in KS}


def eval_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    return pairs[(pairs["role"] == EVAL) & pairs["relevant"].astype(bool)]


def feedback_recall(encoder: Any, dataset_dir: Path, pairs: pd.DataFrame) -> FeedbackRecall:
    """``encoder`` (a DoveEncoder or DualEncoder) on the eval pairs of ``pairs``."""
    from PIL import Image

    chosen = eval_pairs(pairs)
    if chosen.empty:
        return FeedbackRecall(0, {})
    manifest = read_manifest(dataset_dir)
    gallery = manifest[manifest["split"] != "train"].drop_duplicates("image_id")
    gallery = gallery.reset_index(drop=True)
    row_of = {image_id: row for row, image_id in enumerate(gallery["image_id"])}
    chosen = chosen[chosen["image_id"].isin(row_of)]
    pictures = []
    for relative in gallery["image_path"]:
        with Image.open(Path(dataset_dir) / str(relative)) as img:
            pictures.append(img.convert("RGB"))
    image_emb = np.asarray(encoder.encode_images(pictures).v_m, dtype=np.float64)
    text_emb = np.asarray(encoder.encode_texts(list(chosen["caption"])).t_g, dtype=np.float64)
    targets = [row_of[i] for i in chosen["image_id"]]
    return FeedbackRecall(len(chosen), recall_at(text_emb, image_emb, targets))


@dataclass(frozen=True)
class FeedbackGate:
    passed: bool
    reason: str


def check_feedback_gate(
    challenger: FeedbackRecall, champion: FeedbackRecall | None, max_regression: float
) -> FeedbackGate:
    """Refuse a challenger more than ``max_regression`` mR points worse than the champion on
    the users' pairs; no pairs or no champion: nothing to compare (passes, and says so)."""
    if champion is None or challenger.n_pairs == 0:
        return FeedbackGate(True, "no feedback pairs or no champion to compare on them")
    drop = champion.mean - challenger.mean
    line = (
        f"mR_feedback {challenger.mean:.2f} vs champion {champion.mean:.2f} on "
        f"{challenger.n_pairs} users' pairs (tolerance {max_regression:.2f})"
    )
    return FeedbackGate(
        drop <= max_regression, ("passed: " if drop <= max_regression else "refused: ") + line
    )
