from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dove_model.config import load_params, parse_params
from dove_model.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


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


def test_every_profile_of_the_repository_states_its_family() -> None:
    repo = load_params(REPO_PARAMS)
    families = {name: profile.model.family for name, profile in repo.train.profiles.items()}
    assert families == {
        "paper": "dove",
        "real-cpu": "dove",
        "dual-cpu": "dual",
        "dual-gpu": "dual",
        "remoteclip": "clip",
        "demo": "dove",
    }
    assert repo.model_for_training().backbone == "tf_efficientnet_lite0"
    assert repo.model_for_training().pretrained
    assert "model" not in repo.model_dump(by_alias=True)  # no family-wide section at the top


def _with_profiles(**profiles: dict[str, Any]) -> dict[str, Any]:
    first = next(iter(profiles))
    return {"train": {"profile": first, "profiles": profiles}}


def test_a_typo_in_any_profile_is_an_error_naming_the_profile_and_the_key() -> None:
    good = {"model": {"family": "dove"}}
    typo = {"model": {"family": "dual", "embed_dimm": 64}}
    with pytest.raises(ConfigError, match=r"train.profiles.other.model: .*embed_dimm"):
        parse_params(_with_profiles(active=good, other=typo))
    with pytest.raises(ConfigError, match=r"train.profiles.other.model: .*state the model family"):
        parse_params(_with_profiles(active=good, other={"model": {"famly": "dual"}}))
    with pytest.raises(ConfigError, match=r"unknown model family 'duel'.*dove, dual, clip"):
        parse_params(_with_profiles(active=good, other={"model": {"family": "duel"}}))
    with pytest.raises(ConfigError, match=r"train.profiles.active.model: Field required"):
        parse_params(_with_profiles(active={"epochs": 2}))


def test_each_family_takes_only_its_own_settings() -> None:
    dual = parse_params(_with_profiles(d={"model": {"family": "dual", "embed_dim": 64}}))
    assert dual.model_for_training().embed_dim == 64
    assert not hasattr(dual.model_for_training(), "word_dim")  # DOVE's, not the dual family's
    with pytest.raises(ConfigError, match=r"train.profiles.d.model: .*boxes_file"):
        parse_params(_with_profiles(d={"model": {"family": "dual", "boxes_file": "boxes.json"}}))


def test_auto_backbone_is_the_papers_with_its_weights_else_the_offline_one() -> None:
    paper = {"model": {"family": "dove", "backbone": "auto", "pretrained": True}}
    assert parse_params(_with_profiles(paper=paper)).model_for_training().backbone == (
        "tf_efficientnet_lite2"
    )
    paper["model"]["pretrained_path"] = "/weights/resnet50_a1_in1k.safetensors"
    assert parse_params(_with_profiles(paper=paper)).model_for_training().backbone == "resnet50"


def test_the_parsed_parameters_dump_and_parse_back_the_same() -> None:
    """What ``write_smoke_project`` and the KFP components rely on: a dump keeps each
    profile's family settings whole."""
    repo = load_params(REPO_PARAMS)
    assert parse_params(repo.model_dump(mode="json", by_alias=True)) == repo


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_params(bad)
