"""bench/ucm_ceiling.py: the oracles rank what they know first and tie the rest."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from dove_model.metrics import retrieval_metrics, tie_averaged_metrics

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def ceiling(monkeypatch_module: pytest.MonkeyPatch) -> ModuleType:
    """bench/ucm_ceiling.py, imported the way it runs (its folder on sys.path)."""
    monkeypatch_module.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("ucm_ceiling", BENCH / "ucm_ceiling.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_classes_come_from_ucm_numbering_and_other_ids_are_refused(ceiling: ModuleType) -> None:
    scene_classes = ceiling.scene_classes
    assert scene_classes([Path("1.tif"), Path("100.tif"), Path("101.jpg")]).tolist() == [0, 0, 1]
    with pytest.raises(SystemExit, match="UCM"):
        scene_classes([Path("2101.tif")])


def test_the_text_oracle_beats_the_class_oracle_and_ties_count_against_strict_recall(
    ceiling: ModuleType,
) -> None:
    # two classes, two images each; images 0 and 1 share their caption word for word
    classes = np.array([0, 0, 1, 1])
    captions = ["a dense forest.", "A dense forest", "a river", "a bridge", "a lake", "a road"]
    caption_image = np.array([0, 1, 2, 2, 3, 3])
    by_class, by_text = ceiling.oracle_scores(classes, captions, caption_image)
    assert by_class[0].tolist() == [1, 1, 0, 0, 0, 0]
    assert by_text[0].tolist() == [2, 2, 0, 0, 0, 0]  # the twin caption is image 0's text too
    assert by_text[2].tolist() == [0, 0, 2, 2, 1, 1]
    text_ties = tie_averaged_metrics(by_text, caption_image)["mR"]
    assert text_ties > tie_averaged_metrics(by_class, caption_image)["mR"]
    assert retrieval_metrics(by_text, caption_image)["mR"] < text_ties  # twins tie
