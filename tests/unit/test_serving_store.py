"""Model import into a real BentoML model store, serving settings and step metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dove_model.config import Params
from dove_model.errors import ConfigError
from dove_model.model.directory import model_fingerprint
from dove_model.serving.metrics import STEPS, StepMetrics
from dove_model.serving.model_store import import_model_dir, model_dir_of
from dove_model.serving.settings import resolve_serving_config
from dove_model.testing.deployment import tiny_model_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("model") / "model", ["a lake", "a city"])


def test_import_into_the_store_keeps_files_and_labels(model_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "models"
    first = import_model_dir(model_dir, "dove-test", model_version="7", alias="champion",
                             data_version="abc123", store_dir=store)  # fmt: skip
    assert first.labels == {
        "model_version": "7",
        "alias": "champion",
        "data_version": "abc123",
        "fingerprint": model_fingerprint(model_dir)[:16],
    }
    assert (first.model_dir / "model.safetensors").read_bytes() == (
        model_dir / "model.safetensors"
    ).read_bytes()
    second = import_model_dir(model_dir, "dove-test", model_version="8", store_dir=store)
    latest_dir, labels = model_dir_of("dove-test:latest", store)
    assert labels["tag"] == second.tag and labels["model_version"] == "8"
    assert latest_dir == second.model_dir


def test_missing_store_model_and_bad_model_dir_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found in the model store"):
        model_dir_of("nothing:latest", tmp_path / "models")
    with pytest.raises(ConfigError, match=r"missing model\.safetensors"):
        import_model_dir(tmp_path, "dove-test", store_dir=tmp_path / "models")


def test_fingerprint_matches_the_encoder(model_dir: Path) -> None:
    from dove_model.families.dove.inference import DoveEncoder

    assert model_fingerprint(model_dir) == DoveEncoder.from_dir(model_dir).fingerprint


def test_settings_come_from_the_environment_with_params_defaults() -> None:
    config = resolve_serving_config({"DOVE_PARAMS": str(REPO / "params.yaml")})
    assert config.model_tag == "dove-rs-retrieval:latest"
    assert config.index_dir == Path("artifacts/index") and config.model_dir is None
    assert config.api_key is None
    config = resolve_serving_config(
        {
            "DOVE_PARAMS": str(REPO / "params.yaml"),
            "DOVE_MODEL_DIR": "/m",
            "DOVE_INDEX_DIR": "/i",
            "DOVE_API_KEY": "k",
        }
    )
    assert (config.model_dir, config.index_dir, config.api_key) == (Path("/m"), Path("/i"), "k")
    assert isinstance(config.params, Params)


def test_step_metrics_observe_each_step() -> None:
    registry = CollectorRegistry()
    metrics = StepMetrics(registry)
    for step in STEPS:
        with metrics.time(step, "text_to_image", count=3):  # one batch of 3 queries
            pass
    metrics.batch("text_to_image", 3)
    text = generate_latest(registry).decode()
    for step in STEPS:
        assert (
            f'dove_search_step_seconds_count{{direction="text_to_image",step="{step}"}} 3.0' in text
        )
    assert 'dove_search_batch_size_count{direction="text_to_image"} 1.0' in text
    assert 'dove_search_batch_size_sum{direction="text_to_image"} 3.0' in text


def test_import_champion_ships_the_weights_of_the_version_it_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promotion between resolving @champion and downloading must not mix two versions."""
    import importlib
    import json

    from dove_model.config import parse_params
    from dove_model.registry import DataVersion, promote, register, rollback
    from dove_model.serving.model_store import import_champion

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = parse_params({"register": {"gates": {"min_metrics": {"mR": 5.0}}}})
    weights = {}
    for version, mr in (("1", 10.0), ("2", 12.0)):
        model = tmp_path / f"model-{version}"
        model.mkdir()
        weights[version] = f"weights of v{version}".encode()
        (model / "model.safetensors").write_bytes(weights[version])
        (model / "config.json").write_text("{}")
        (model / "vocab.json").write_text("{}")
        metrics = tmp_path / f"metrics-{version}.json"
        metrics.write_text(json.dumps({"split": "test", "mR": mr}))
        register(model, metrics, params, DataVersion(f"data-{version}", None, "rev"), root=tmp_path)
    rollback(params, root=tmp_path)  # champion v1, v2 waiting
    # the package re-exports the function `register`, which shadows the module's name
    register_module = importlib.import_module("dove_model.registry.register")

    real_download = register_module.download_model_dir

    def promote_then_download(model_uri: str, dst: Path) -> Path:
        promote(params, "2", root=tmp_path)  # another host, right between resolve and download
        return real_download(model_uri, dst)

    monkeypatch.setattr(register_module, "download_model_dir", promote_then_download)
    imported = import_champion(params, root=tmp_path, store_dir=tmp_path / "store")
    version = imported.labels["model_version"]
    assert version == "1"  # what @champion was when deploy resolved it
    assert (imported.model_dir / "model.safetensors").read_bytes() == weights[version]
    assert imported.labels["data_version"] == f"data-{version}"
    assert imported.labels["fingerprint"] == model_fingerprint(imported.model_dir)[:16]
