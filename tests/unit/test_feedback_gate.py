"""The feedback gate: recall of the users' held-out pairs (checked against a naive loop),
a regressing challenger refused, an equal or better one let through, and the measure run
with a real (untrained, tiny) DOVE encoder on a real image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dove_model.data.manifest import read_manifest
from dove_model.feedback.gate import (
    KS,
    FeedbackRecall,
    check_feedback_gate,
    feedback_recall,
    recall_at,
)


def naive_recall(text: np.ndarray, image: np.ndarray, targets: list[int]) -> dict[str, float]:
    out = {}
    for k in KS:
        hits = 0
        for i, target in enumerate(targets):
            cos = [
                float(text[i] @ image[j] / np.linalg.norm(text[i]) / np.linalg.norm(image[j]))
                for j in range(len(image))
            ]
            better = sum(c > cos[target] for c in cos)
            hits += better < k
        out[f"R@{k}"] = 100.0 * hits / len(targets)
    return out


def test_recall_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(0)
    text, image = rng.normal(size=(30, 8)), rng.normal(size=(25, 8))
    targets = list(rng.integers(0, 25, 30))
    assert recall_at(text, image, targets) == pytest.approx(naive_recall(text, image, targets))


def users_recall(noise: float, seed: int = 0) -> FeedbackRecall:
    """Recall on 200 pairs of a model whose text embedding is its image's plus ``noise``."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(100, 32))
    targets = list(rng.integers(0, 100, 200))
    text = image[targets] + noise * rng.normal(size=(200, 32))
    return FeedbackRecall(200, recall_at(text, image, targets))


def test_a_challenger_worse_on_the_users_pairs_is_refused() -> None:
    champion, worse = users_recall(0.8), users_recall(2.5)
    assert worse.mean < champion.mean - 10
    decision = check_feedback_gate(worse, champion, max_regression=1.0)
    assert not decision.passed and decision.reason.startswith("refused: mR_feedback")


def test_an_equal_or_better_challenger_passes() -> None:
    champion, better = users_recall(0.8), users_recall(0.4, seed=1)
    assert check_feedback_gate(better, champion, 1.0).passed
    assert check_feedback_gate(champion, champion, 0.0).passed


def test_no_pairs_or_no_champion_is_nothing_to_refuse() -> None:
    assert check_feedback_gate(FeedbackRecall(0, {}), users_recall(0.5), 1.0).passed
    assert check_feedback_gate(users_recall(0.5), None, 1.0).passed


def test_feedback_recall_runs_a_real_encoder_on_the_eval_pairs(tmp_path: Path) -> None:
    from dove_model.families.dispatch import load_encoder
    from dove_model.testing.deployment import synthetic_dataset, tiny_model_dir

    dataset = synthetic_dataset(tmp_path / "data", per_scene=2, size=64)
    manifest = read_manifest(dataset)
    model = tiny_model_dir(tmp_path / "model", list(manifest["caption"]))
    images = manifest.drop_duplicates("image_id")["image_id"].tolist()[:6]
    pairs = pd.DataFrame(
        {
            "pair_id": [f"p{i}" for i in range(6)],
            "image_id": images,
            "caption": ["a lake with green shores"] * 6,
            "relevant": [True] * 5 + [False],
            "role": ["eval"] * 4 + ["train"] * 2,
        }
    )
    result = feedback_recall(load_encoder(model), dataset, pairs)
    assert result.n_pairs == 4  # relevant eval pairs only
    assert set(result.recall) == {"R@1", "R@5", "R@10"}
    assert all(0.0 <= v <= 100.0 for v in result.recall.values())
