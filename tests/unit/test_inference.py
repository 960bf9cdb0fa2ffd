"""DoveEncoder (the serving contract): model directory round trip, bad input, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dove_model.errors import ConfigError
from dove_model.families.dispatch import check_model_dir
from dove_model.families.dove.inference import DoveEncoder
from dove_model.families.dove.io import MODEL_DIR_FILES, save_model_dir
from dove_model.families.dove.model import DoveModel
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.vocab import Vocabulary
from dove_model.model.directory import WEIGHTS_FILE, model_fingerprint
from dove_model.model.preprocess import preprocessing_for

CAPTIONS = ["a red house near a river", "green field with trees", "a grey road"]


def write_model(target: Path, **overrides: object) -> Path:
    torch.manual_seed(0)
    tiny = {"backbone": "resnet18", "embed_dim": 16, "word_dim": 8, "vocab_min_freq": 1}
    params = DoveSettings(**{**tiny, **overrides})
    vocab = Vocabulary.build(CAPTIONS, min_freq=1, max_len=params.max_len)
    return save_model_dir(
        DoveModel(params, len(vocab)), vocab, 64, target, preprocessing_for(params.backbone)
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(tmp_path_factory.mktemp("enc") / "model")


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> DoveEncoder:
    return DoveEncoder.from_dir(model_dir)


def test_model_directory_layout(model_dir: Path) -> None:
    assert {p.name for p in model_dir.iterdir()} == {
        "model.safetensors",
        "config.json",
        "vocab.json",
    }
    config = json.loads((model_dir / "config.json").read_text())
    assert config["format_version"] == 1 and config["eval_size"] == 64
    assert config["model"]["embed_dim"] == 16
    assert json.loads((model_dir / "vocab.json").read_text())["max_len"] == 47


def test_model_io_owns_the_directory_layout(model_dir: Path, tmp_path: Path) -> None:
    """One file list, one check, one fingerprint (the registry and serving use these)."""
    from dove_model.hashing import sha256_file

    assert {p.name for p in model_dir.iterdir()} == set(MODEL_DIR_FILES)
    check_model_dir(model_dir)
    assert model_fingerprint(model_dir) == sha256_file(model_dir / WEIGHTS_FILE)
    assert DoveEncoder.from_dir(model_dir).fingerprint == model_fingerprint(model_dir)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(ConfigError, match=r"missing config\.json, vocab\.json"):
        check_model_dir(tmp_path)


def test_awkward_images_encode(encoder: DoveEncoder) -> None:
    rng = np.random.default_rng(0)
    palette = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).convert("P")
    images = [
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8), mode="L"),
        Image.new("RGBA", (300, 200), (10, 200, 30, 128)),
        Image.fromarray(rng.integers(0, 65535, (50, 70), dtype=np.uint16)),  # 16-bit
        palette,
        Image.new("RGB", (3, 2)),  # tiny
        Image.new("LA", (20, 20)),
    ]
    parts = encoder.encode_images(images, batch_size=4)
    for array in (parts.v_m, parts.v_mr, parts.r):
        assert array.shape == (6, 16) and array.dtype == np.float32
        assert np.isfinite(array).all()
        assert np.allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)


def test_awkward_captions_encode(encoder: DoveEncoder) -> None:
    texts = encoder.encode_texts(["", "zzz qqq xxx", "river " * 1000, "A red house."])
    assert texts.t_g.shape == (4, 16) and texts.words.shape == (4, 47, 16)
    assert texts.mask.dtype == bool
    assert texts.mask.sum(axis=1).tolist() == [1, 3, 47, 3]
    assert np.isfinite(texts.words).all() and np.isfinite(texts.t_g).all()


def test_score_chunking_pairs_and_global(encoder: DoveEncoder) -> None:
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(5)]
    img = encoder.encode_images(images)
    txt = encoder.encode_texts(CAPTIONS * 3)
    full = encoder.score(img, txt, chunk_size=1024)
    chunked = encoder.score(img, txt, chunk_size=2)
    assert full.shape == (5, 9)
    np.testing.assert_allclose(full, chunked, atol=1e-6)
    pairs = encoder.score_pairs(img, txt, np.array([0, 4, 2]), np.array([8, 0, 3]), chunk_size=2)
    np.testing.assert_allclose(pairs, full[[0, 4, 2], [8, 0, 3]], atol=1e-5)
    cand = np.array([[0, 4], [3, 3], [1, 2]] * 3)  # per caption: its candidate images
    per_text = encoder.score_text_candidates(img, txt, cand, chunk_size=2)
    np.testing.assert_allclose(per_text, np.take_along_axis(full.T, cand, axis=1), atol=1e-5)
    glob = encoder.global_score(img, txt)
    np.testing.assert_allclose(glob, img.v_m @ txt.t_g.T)
    assert not np.allclose(glob, full)  # ROAM is not the global score


def test_encoding_is_deterministic_and_fingerprint_is_the_weights_hash(
    model_dir: Path, encoder: DoveEncoder
) -> None:
    import hashlib

    image = [Image.new("RGB", (64, 64), (120, 30, 90))]
    again = DoveEncoder.from_dir(model_dir)
    np.testing.assert_array_equal(
        encoder.encode_images(image).v_mr, again.encode_images(image).v_mr
    )
    want = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert encoder.fingerprint == want


def test_checkpoint_from_another_config_names_the_mismatch(tmp_path: Path) -> None:
    write_model(tmp_path / "a")
    write_model(tmp_path / "b", embed_dim=32)
    # weights of b with the config of a
    (tmp_path / "a" / "model.safetensors").write_bytes(
        (tmp_path / "b" / "model.safetensors").read_bytes()
    )
    with pytest.raises(ConfigError, match=r"model\.safetensors: tensor .* has shape .*32"):
        DoveEncoder.from_dir(tmp_path / "a")
    write_model(tmp_path / "c", use_roam=False)
    (tmp_path / "b" / "model.safetensors").write_bytes(
        (tmp_path / "c" / "model.safetensors").read_bytes()
    )
    with pytest.raises(ConfigError, match="missing"):
        DoveEncoder.from_dir(tmp_path / "b")


def test_missing_or_broken_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.json: not found"):
        DoveEncoder.from_dir(tmp_path)
    write_model(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["model"]["embed_dim"] = "big"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"config\.json: invalid model config"):
        DoveEncoder.from_dir(tmp_path / "m")


def test_roam_ablation_scores_globally(tmp_path: Path) -> None:
    encoder = DoveEncoder.from_dir(write_model(tmp_path / "vse", use_roam=False))
    img = encoder.encode_images([Image.new("RGB", (64, 64), (5, 5, 5))])
    txt = encoder.encode_texts(CAPTIONS)
    np.testing.assert_allclose(encoder.score(img, txt), encoder.global_score(img, txt), atol=1e-6)


def test_a_model_trained_on_quarter_turns_embeds_every_image_that_way(tmp_path: Path) -> None:
    """``tta_rotations`` travels in the model directory: the encoder that indexing and the
    service load gives a scene and its quarter-turn the same global embedding; a single-view
    model does not."""
    rng = np.random.default_rng(0)
    scene = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    turned = scene.transpose(Image.Transpose.ROTATE_90)
    for rotations, invariant in ((4, True), (1, False)):
        encoder = DoveEncoder.from_dir(
            write_model(tmp_path / f"r{rotations}", tta_rotations=rotations)
        )
        assert encoder.model.backbone.rotations == rotations
        parts = encoder.encode_images([scene, turned])
        assert np.allclose(parts.v_m[0], parts.v_m[1], atol=1e-4) is invariant
