"""Model import into a real BentoML model store, serving settings and step metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dove_model.config import Params
from dove_model.errors import ConfigError
from dove_model.serving.metrics import STEPS, StepMetrics
from dove_model.serving.model_store import import_model_dir, model_dir_of, weights_fingerprint
from dove_model.serving.settings import resolve_serving_config
from dove_model.serving.synthetic import tiny_model_dir

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
        "fingerprint": weights_fingerprint(model_dir)[:16],
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
    from dove_model.inference import DoveEncoder

    assert weights_fingerprint(model_dir) == DoveEncoder.from_dir(model_dir).fingerprint


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
