"""Preprocessing follows the backbone, lives in the model directory, and every consumer
(training, evaluation, indexing, the service) uses the directory's values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dove_model.config import Params
from dove_model.families.dove.inference import DoveEncoder
from dove_model.index import build_index, load_archive
from dove_model.model.directory import CONFIG_FILE, read_model_config
from dove_model.model.preprocess import (
    IMAGENET_MEAN,
    LEGACY,
    Preprocessing,
    load_image,
    preprocessing_for,
)
from dove_model.serving.runtime import load_encoder
from dove_model.serving.settings import ServingConfig
from dove_model.testing.deployment import SCENES, synthetic_dataset, tiny_model_dir

CAPTIONS = [c for _, c in SCENES.values()]
CUSTOM = Preprocessing((0.2, 0.3, 0.4), (0.9, 0.8, 0.7), "nearest")


def with_preprocess(model_dir: Path, target: Path, prep: Preprocessing | None) -> Path:
    """A copy of ``model_dir`` whose config.json holds ``prep`` (None: an old directory)."""
    shutil.copytree(model_dir, target)
    config = json.loads((target / CONFIG_FILE).read_text())
    if prep is None:
        config.pop("preprocess")
    else:
        config["preprocess"] = prep.to_json()
    (target / CONFIG_FILE).write_text(json.dumps(config))
    return target


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return tiny_model_dir(tmp_path_factory.mktemp("prep") / "model", CAPTIONS)


def test_preprocessing_comes_from_the_backbones_pretrained_config() -> None:
    lite = preprocessing_for("tf_efficientnet_lite2")
    assert (lite.mean, lite.std, lite.interpolation) == ((0.5,) * 3, (0.5,) * 3, "bicubic")
    assert preprocessing_for("resnet50").mean == IMAGENET_MEAN
    assert Preprocessing.from_json(lite.to_json()) == lite


def test_a_new_model_directory_stores_it_and_an_old_one_loads_with_its_old_values(
    model_dir: Path, tmp_path: Path
) -> None:
    assert read_model_config(model_dir).preprocess == preprocessing_for("resnet18")
    old = with_preprocess(model_dir, tmp_path / "old", None)
    assert read_model_config(old).preprocess == LEGACY
    assert DoveEncoder.from_dir(old).preprocess == LEGACY


def test_evaluation_indexing_and_the_service_encode_with_the_directorys_values(
    model_dir: Path, tmp_path: Path
) -> None:
    custom = with_preprocess(model_dir, tmp_path / "custom", CUSTOM)
    legacy = with_preprocess(model_dir, tmp_path / "legacy", None)
    dataset = synthetic_dataset(tmp_path / "ds", per_scene=1)
    images = sorted((dataset / "images").rglob("*.png"))[:3]
    pil = [load_image(p) for p in images]
    # evaluation and indexing load DoveEncoder.from_dir; the service loads through load_encoder
    served, _ = load_encoder(
        ServingConfig(Params(), "unused", custom, tmp_path / "index", api_key=None)
    )
    assert served.preprocess == CUSTOM  # type: ignore[attr-defined]
    with_custom = DoveEncoder.from_dir(custom).encode_images(pil).v_m
    with_legacy = DoveEncoder.from_dir(legacy).encode_images(pil).v_m
    assert not np.allclose(with_custom, with_legacy, atol=1e-4)  # the values are really used
    index = build_index(custom, dataset, Params(), tmp_path / "index", progress=False)
    archive = load_archive(index, Params().index)
    stored = np.asarray(archive.arrays.v_m, np.float32)
    rows = [archive.image_file(r).name for r in range(archive.n_images)]
    for name, vector in zip([p.name for p in images], with_custom, strict=True):
        np.testing.assert_allclose(stored[rows.index(name)], vector, atol=2e-3)
