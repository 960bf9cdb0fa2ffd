"""`dove deploy` from a real MLflow registry (sqlite): the champion is downloaded, imported
into the BentoML store with its version, alias and data version, and indexes the archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dove_model.config import parse_params
from dove_model.index import load_archive
from dove_model.model.directory import model_fingerprint
from dove_model.registry import detect_data_version
from dove_model.registry import register as register_model
from dove_model.serving.deploy import deploy
from dove_model.serving.model_store import model_dir_of
from dove_model.testing.deployment import SCENES, synthetic_dataset, tiny_model_dir

pytestmark = pytest.mark.integration


def test_deploy_imports_the_mlflow_champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow may write next to the working directory
    params = parse_params(
        {"register": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}}, "test params"
    )
    dataset = synthetic_dataset(tmp_path / "dataset", per_scene=2)
    captions = [caption for _, caption in SCENES.values()]
    model_dir = tiny_model_dir(tmp_path / "train" / "model", [*captions, "there is"])
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"mR": 42.0, "split": "test"}), encoding="utf-8")
    data_version = detect_data_version(dataset, root=tmp_path)
    registered = register_model(model_dir, metrics, params, data_version, root=tmp_path)
    assert registered.promoted and registered.champion_version == "1"

    store = tmp_path / "bentoml" / "models"
    result = deploy(
        params, dataset, index_dir=tmp_path / "index", store_dir=store, root=tmp_path,
        progress=False,
    )  # fmt: skip
    assert result.model.labels["model_version"] == "1"
    assert result.model.labels["alias"] == "champion"
    assert result.model.labels["data_version"] == data_version.tag
    stored_dir, labels = model_dir_of("dove-rs-retrieval:latest", store)
    assert labels["tag"] == result.model.tag
    assert model_fingerprint(stored_dir) == model_fingerprint(model_dir)

    archive = load_archive(result.index_dir, params.index)
    assert archive.fingerprint == model_fingerprint(model_dir)
    assert archive.meta["model"]["alias"] == "champion" and archive.n_images == 8
