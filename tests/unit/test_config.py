from __future__ import annotations

from pathlib import Path

import pytest

from dove_model.config import load_params, parse_params
from dove_model.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_validate() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.train.profile in params.train.profiles
    assert params.register_.model_name == "dove-rs-retrieval"


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"data\.colour"):
        parse_params({"data": {"colour": "red"}})


def test_unknown_profile_is_an_error() -> None:
    with pytest.raises(ConfigError, match="profile"):
        parse_params({"train": {"profile": "huge"}})


def test_a_batching_limit_params_yaml_cannot_reach_is_refused() -> None:
    assert parse_params({"serve": {"max_batch_size": 32}}).serve.max_batch_size == 32
    with pytest.raises(ConfigError, match=r"serve.max_latency_ms is fixed at 1000.*service.py"):
        parse_params({"serve": {"max_latency_ms": 50}})


def test_profile_overrides_apply_to_model() -> None:
    params = parse_params({})
    assert params.model.backbone == "resnet50"
    assert params.model_for_training().backbone == "tf_efficientnet_lite0"
    assert params.model_for_training().pretrained


def test_auto_backbone_is_the_papers_with_its_weights_else_the_offline_one() -> None:
    paper = {"model": {"backbone": "auto", "pretrained": True}}
    raw = {"train": {"profile": "paper", "profiles": {"paper": paper}}}
    assert parse_params(raw).model_for_training().backbone == "tf_efficientnet_lite2"
    raw["model"] = {"pretrained_path": "/weights/resnet50_a1_in1k.safetensors"}
    assert parse_params(raw).model_for_training().backbone == "resnet50"
    repo = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    assert {"paper", "real-cpu", "demo"} <= set(repo.train.profiles)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_params(bad)


def test_region_boxes_are_refused_for_the_dual_family() -> None:
    with pytest.raises(ConfigError, match=r"boxes_file \(region boxes\) is DOVE.s; a dual model"):
        parse_params({"model": {"family": "dual", "boxes_file": "boxes.json"}})
