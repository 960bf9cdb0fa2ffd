"""The feedback gate through a real `mlflow server`: a challenger worse than the champion on the
users' own held-out relevant pairs is refused by the register stage (champion unchanged, the
reason in the version's ``gate`` / ``gate_summary`` tags as for any gate failure, and neither
`dove promote` nor the DAG's promote task lets it through); one that is not worse is promoted.

The champion is the smoke model (trained one epoch on 48 synthetic images); the regressed
challenger an untrained tiny DOVE. The users' marks go through the query log's records and
``collect_pairs`` (so their role, ``eval``, is the export's): searches of the evaluation
images' captions, each marking relevant the image the champion ranked first where the
challenger ranks it outside its top 10. Both have the same test recalls, so only the
feedback gate can tell them apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dove_model.config import Params, load_params
from dove_model.data.feedback_rows import EVAL, PAIRS_FILE
from dove_model.data.manifest import read_manifest
from dove_model.registry import alias_state, detect_data_version, promote, register
from dove_model.registry.register import GATE_SUMMARY_TAG, GATE_TAG

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]

TOLERANCE = 1.0  # register.gates.max_regression: mR points
MR = 10.0  # every version's test mR: the recall gates pass alike


@pytest.fixture(scope="module")
def project(smoke_trained: tuple[Path, Params]) -> tuple[Path, Params]:
    """The trained smoke project with a 1-point regression tolerance."""
    from dove_model.testing.smoke import write_smoke_project

    root, _ = smoke_trained
    write_smoke_project(root, {"register": {"gates": {"max_regression": TOLERANCE}}})
    return root, load_params(root / "params.yaml")


def _scores(model_dir: Path, texts: list[str], images: list[Path]) -> np.ndarray:
    """Cosine of each text's global embedding to each image's (the gate's own measure)."""
    from PIL import Image

    from dove_model.families.dispatch import load_encoder

    encoder = load_encoder(model_dir)
    pictures = [Image.open(p).convert("RGB") for p in images]
    v = np.asarray(encoder.encode_images(pictures).v_m, dtype=np.float64)
    t = np.asarray(encoder.encode_texts(texts).t_g, dtype=np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return t @ v.T


def _users_pairs(dataset: Path, champion: Path, challenger: Path) -> pd.DataFrame:
    """The pairs of searches whose relevant mark (the champion's first result) the challenger
    ranks outside its top 10, through the query log's records and ``collect_pairs``."""
    from dove_model.feedback.export import collect_pairs
    from dove_model.feedback.records import FeedbackRecord, QueryRecord

    manifest = read_manifest(dataset)
    held_out = manifest[manifest["split"] != "train"]
    gallery = held_out.drop_duplicates("image_id").reset_index(drop=True)
    texts = sorted(set(held_out["caption"]))
    paths = [dataset / str(p) for p in gallery["image_path"]]
    ours, theirs = _scores(champion, texts, paths), _scores(challenger, texts, paths)
    searches, marks = [], []
    for row, text in enumerate(texts):
        best = int(ours[row].argmax())
        if (theirs[row] > theirs[row, best]).sum() < 10:
            continue
        image_id = str(gallery["image_id"][best])
        search = QueryRecord.of_search(text, 10, [(image_id, 0.9)], ("1", None), 1.0, "text")
        searches.append(search)
        marks.append(FeedbackRecord(search.query_id, image_id, True, 1))
    pairs, _ = collect_pairs(searches, marks, manifest)
    return pairs


@pytest.fixture(scope="module")
def models(project: tuple[Path, Params]) -> dict[str, Path]:
    """The champion's and the regressed challenger's model directories, and the users' pairs
    written where `dove feedback export` writes them."""
    from dove_model.testing.deployment import tiny_model_dir

    root, params = project
    dataset = root / params.data.prepared_dir / params.data.name
    champion = root / params.train.out_dir / "model"
    captions = list(read_manifest(dataset)["caption"])
    worse = tiny_model_dir(root / "untrained" / "model", captions, seed=3)
    pairs = _users_pairs(dataset, champion, worse)
    assert len(pairs) >= 5 and set(pairs["role"]) == {EVAL}, pairs
    out = root / params.feedback.export.dir / PAIRS_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    pairs.to_parquet(out, index=False)
    return {"champion": champion, "worse": worse}


def _register(root: Path, params: Params, model_dir: Path, tag: str) -> Any:
    metrics = root / f"metrics-{tag}.json"
    metrics.write_text(json.dumps({"split": "test", "mR": MR, "i2t_r1": MR / 2}))
    dataset = root / params.data.prepared_dir / params.data.name
    return register(
        model_dir,
        metrics,
        params,
        detect_data_version(dataset, root=root),
        dataset_dir=dataset,
        validation_dir=None,
        root=root,
    )


def _tags(params: Params, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return MlflowClient().get_model_version(params.register_.model_name, version).tags


def test_a_challenger_worse_on_the_users_pairs_is_refused_and_one_not_worse_promoted(
    project: tuple[Path, Params],
    models: dict[str, Path],
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dove_model.errors import GateFailed
    from dove_model.pipeline.retraining import promote_if_gated

    root, params = project
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert _register(root, params, models["champion"], "v1").promoted  # no champion yet

    refused = _register(root, params, models["worse"], "v2")
    assert not refused.promoted and refused.champion_version == "1"
    assert alias_state(params, root=root) == {
        "champion": "1",
        "previous-champion": None,
        "challenger": "2",
    }
    tags = _tags(params, "2")
    assert tags[GATE_TAG] == "failed"
    assert tags[GATE_SUMMARY_TAG].startswith("gates failed: feedback refused: mR_feedback 0.00")
    assert "vs champion 100.00" in tags[GATE_SUMMARY_TAG]
    with pytest.raises(GateFailed, match="feedback refused: mR_feedback"):
        promote(params, "2", root=root)  # `dove promote 2` without --force
    assert promote_if_gated(str(root), "params.yaml", "2") == []  # the DAG's promote task
    assert alias_state(params, root=root)["champion"] == "1"

    equal = _register(root, params, models["champion"], "v3")  # the same weights: not worse
    assert equal.promoted and equal.champion_version == "3"
    assert alias_state(params, root=root) == {
        "champion": "3",
        "previous-champion": "1",
        "challenger": "3",
    }
    promoted = _tags(params, "3")
    assert promoted[GATE_TAG] == "passed"
    assert "feedback passed: mR_feedback 100.00 vs champion 100.00" in promoted[GATE_SUMMARY_TAG]
