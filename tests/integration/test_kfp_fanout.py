"""The sharded deploy step on KFP's local runner: ``index.shards: 3`` compiles the deploy step
into a ``dsl.ParallelFor`` of index_shard tasks and a merge_index task over their
``dsl.Collected`` shard folders, and `dove pipeline run --local` runs it for real (KFP 2.17's
local runner runs ParallelFor and Collected: kfp/local/pipeline_orchestrator.py sends a DAG with
an iterator to orchestrator/enhanced_dag_orchestrator.py). The merged index equals a single
build with the same champion (exact kind: identical search results)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dove_model.config import Params, load_params
from dove_model.testing.ranking import assert_same_ranking
from dove_model.testing.smoke import write_smoke_project

DOVE = str(Path(sys.executable).with_name("dove"))
SHARDS = 3
QUERIES = ("a blue lake surrounded by land", "yellow desert", "roads", "green forest")

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore")]


@pytest.fixture(scope="module")
def fanout_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Params, Path]:
    root = tmp_path_factory.mktemp("kfp-fanout")
    params = load_params(write_smoke_project(root, {"index": {"shards": SHARDS}}))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["BENTOML_HOME"] = str(root / "bentoml_home")
    done = subprocess.run(
        [DOVE, "pipeline", "run", "--local", "--data-version", "fanout-v1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    (run_dir,) = (root / params.pipeline.local_root).iterdir()
    return root, params, run_dir


def test_every_shard_ran_and_the_merge_collected_them(fanout_run) -> None:
    from dove_model.index.shards import read_shard

    _, _, run_dir = fanout_run
    shard_dirs = sorted(run_dir.glob("for-loop-*-iteration-*/index-shard/shard"))
    assert len(shard_dirs) == SHARDS
    metas = [read_shard(d).meta for d in shard_dirs]
    assert sorted(m["shard"] for m in metas) == list(range(SHARDS))
    assert {m["shards"] for m in metas} == {SHARDS}
    assert {m["model"]["alias"] for m in metas} == {"champion"}
    assert sum(m["n_images"] for m in metas) == 48
    assert not (run_dir / "deploy").exists()  # the single deploy task is replaced
    assert any((run_dir / "merge-index" / "index").iterdir())


def _search(folder: Path, model_dir: Path, params: Params) -> tuple[list, np.ndarray]:
    from dove_model.families.dispatch import load_encoder
    from dove_model.index import load_archive
    from dove_model.serving.search import Searcher

    archive = load_archive(folder, params.index)
    searcher = Searcher(load_encoder(model_dir, device="cpu"), archive, archive.n_images)
    found, scores = [], []
    for query in QUERIES:
        hits = searcher.search_images(query, k=10)
        found.append([h.image_id for h in hits])
        scores += [h.score for h in hits]
    return found, np.array(scores)


def test_the_merged_index_equals_a_single_build_with_the_champion(fanout_run) -> None:
    from dove_model.index import build_index, load_archive

    root, params, run_dir = fanout_run
    model_dir = run_dir / "train" / "model" / "model"  # the champion (promoted: version 1)
    dataset = run_dir / "prepare" / "dataset" / params.data.name
    single = build_index(model_dir, dataset, params, root / "single", progress=False)
    merged = run_dir / "merge-index" / "index"
    one, many = load_archive(single, params.index), load_archive(merged, params.index)
    assert many.fingerprint == one.fingerprint and many.meta["image_index"] == "exact"
    assert many.meta["merged_from_shards"] == SHARDS
    assert list(many.images["image_id"]) == list(one.images["image_id"])
    assert many.captions.equals(one.captions)
    for name in ("v_m", "v_mr", "r"):  # equal up to one float16 step (CPU kernels differ)
        np.testing.assert_allclose(
            np.asarray(getattr(many.arrays, name), np.float32),
            np.asarray(getattr(one.arrays, name), np.float32),
            rtol=1e-3,
            atol=1e-5,
        )
    found, scores = _search(merged, model_dir, params)
    expected_found, expected_scores = _search(single, model_dir, params)
    assert_same_ranking(found, expected_found, scores, expected_scores)
