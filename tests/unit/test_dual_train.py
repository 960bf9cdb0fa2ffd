"""The train stage with ``model.family: dual``: both recipes, the model directory, the encoder."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dove_model.config import Params, load_params
from dove_model.data.manifest import load_split
from dove_model.data.prepare import prepare
from dove_model.errors import ConfigError
from dove_model.families.dispatch import load_encoder, train
from dove_model.families.dove.inference import DoveEncoder
from dove_model.families.dual.inference import DualEncoder
from dove_model.model.preprocess import load_image
from dove_model.testing.smoke import DUAL_SMOKE, write_smoke_project

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Params, Path]:
    root = tmp_path_factory.mktemp("dual-train")
    params = load_params(write_smoke_project(root, DUAL_SMOKE))
    torch.set_num_threads(1)
    with contextlib.chdir(root):
        dataset = prepare(params, progress=False).resolve()
    return root, params, dataset


@pytest.fixture(scope="module")
def trained(project: tuple[Path, Params, Path]):
    root, params, dataset = project
    records: list[dict] = []
    with contextlib.chdir(root):
        result = train(dataset, params, root / "out", progress=False, on_epoch_end=records.append)
    return result, records


def test_dual_cpu_writes_a_self_contained_dual_model_directory(trained) -> None:
    result, records = trained
    files = {p.name for p in result.model_dir.iterdir()}
    assert files == {"model.safetensors", "config.json", "text_tower"}
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["family"] == "dual" and config["model"]["family"] == "dual"
    history = json.loads(result.history_file.read_text())
    assert history["family"] == "dual" and len(history["epochs"]) == 3 == len(records)
    assert result.best_metrics == records[result.best_epoch - 1]["val"]
    assert result.best_metrics["mR"] > result.random_chance_mR
    assert {"i2t_r1", "t2i_r10", "mR"} <= set(records[0]["val"])


def test_the_second_run_reads_the_tower_features_from_the_cache(
    project: tuple[Path, Params, Path], trained
) -> None:
    root, params, dataset = project
    cache = root / params.train.cache_dir
    entries = sorted(cache.glob("dual-*.pt"))
    assert len(entries) == 2  # train and validation splits
    stamps = [p.stat().st_mtime_ns for p in entries]
    with contextlib.chdir(root):
        again = train(dataset, params, root / "out-again", progress=False)
    assert [p.stat().st_mtime_ns for p in sorted(cache.glob("dual-*.pt"))] == stamps
    assert again.best_metrics == trained[0].best_metrics  # same seed, same features


def test_the_dual_encoder_scores_the_same_way_in_every_method(
    project: tuple[Path, Params, Path], trained
) -> None:
    _, _, dataset = project
    encoder = load_encoder(trained[0].model_dir)
    assert isinstance(encoder, DualEncoder) and encoder.single_stage
    split = load_split(dataset, "test")
    images = encoder.encode_images([load_image(p) for p in split.image_paths[:6]])
    texts = encoder.encode_texts(split.captions[:9])
    assert images.v_m.shape == (6, 64) and images.v_mr.shape == (6, 0)
    assert np.allclose(np.linalg.norm(texts.t_g, axis=1), 1.0, atol=1e-5)
    full = encoder.score(images, texts)
    assert np.allclose(full, images.v_m @ texts.t_g.T, atol=1e-6)
    pairs = encoder.score_pairs(images, texts, np.array([0, 5, 2]), np.array([8, 1, 1]))
    assert np.allclose(pairs, full[[0, 5, 2], [8, 1, 1]], atol=1e-6)
    candidates = np.array([[0, 3], [5, 5]] * 4 + [[1, 2]])
    ranked = encoder.score_text_candidates(images, texts, candidates)
    assert np.allclose(ranked, full.T[np.arange(9)[:, None], candidates], atol=1e-6)
    assert encoder.unknown_words("zxqv unheard words") == []
    with pytest.raises(ValueError, match="no region boxes"):
        encoder.encode_images([load_image(split.image_paths[0])], boxes=np.zeros((1, 4, 4)))


def test_bfloat16_towers_embed_like_float32_and_hand_float32_to_the_heads(
    project: tuple[Path, Params, Path], trained
) -> None:
    """The serving/indexing precision (``tower_precision``): the towers run in bfloat16, the
    heads and every returned vector stay float32, and the embeddings barely move."""
    _, _, dataset = project
    split = load_split(dataset, "test")
    pictures = [load_image(p) for p in split.image_paths[:6]]
    exact = load_encoder(trained[0].model_dir)
    fast = load_encoder(trained[0].model_dir, tower_precision="bfloat16")
    assert exact.tower_dtype == torch.float32 and fast.tower_dtype == torch.bfloat16
    assert next(fast.model.heads.parameters()).dtype == torch.float32
    for encode, inputs in (("encode_images", pictures), ("encode_texts", split.captions[:9])):
        want = getattr(exact, encode)(inputs)
        got = getattr(fast, encode)(inputs)
        vectors = got.v_m if encode == "encode_images" else got.t_g
        reference = want.v_m if encode == "encode_images" else want.t_g
        assert vectors.dtype == np.float32
        assert not np.array_equal(vectors, reference)  # the towers really ran in bfloat16
        assert (np.sum(vectors * reference, axis=1) > 0.99).all()


def test_a_dove_directory_without_a_family_still_loads_as_dove(
    smoke_trained: tuple[Path, Params], tmp_path: Path
) -> None:
    import shutil

    root, params = smoke_trained
    legacy = Path(shutil.copytree(root / params.train.out_dir / "model", tmp_path / "m"))
    config = json.loads((legacy / "config.json").read_text())
    config.pop("family", None)
    (legacy / "config.json").write_text(json.dumps(config))
    assert isinstance(load_encoder(legacy), DoveEncoder)
    config["family"] = "triple"
    (legacy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="unknown model family 'triple'"):
        load_encoder(legacy)


def test_dual_gpu_recipe_fine_tunes_both_towers(project: tuple[Path, Params, Path]) -> None:
    """``feature_cache: false``: the towers train too (a few steps on CPU here)."""
    from dove_model.model.towers import create_image_tower

    root, _, dataset = project
    raw = yaml.safe_load((root / "params.yaml").read_text())
    profile = raw["train"]["profiles"]["smoke-dual"]
    profile.update(
        epochs=1, feature_cache=False, backbone_lr=1e-4, resize=72, crop=64, warmup_epochs=0.5
    )
    path = root / "params-finetune.yaml"
    path.write_text(yaml.safe_dump(raw))
    params = load_params(path)
    with contextlib.chdir(root):
        result = train(dataset, params, root / "out-finetune", progress=False)
    tuned = load_encoder(result.model_dir).model
    pretrained = create_image_tower("tf_efficientnet_lite0")
    name, weight = next(iter(pretrained.state_dict().items()))
    assert not torch.equal(tuned.image_tower.state_dict()[name], weight)
    history = json.loads(result.history_file.read_text())
    assert np.isfinite(history["epochs"][0]["loss"]) and result.best_epoch == 1


def test_lit_tuning_trains_the_text_towers_top_layers_only(
    project: tuple[Path, Params, Path],
) -> None:
    """``text_tune_layers``: the top text layers change, the lower ones and the image tower
    keep their pretrained weights, and the saved model scores with the tuned layers."""
    from dove_model.model.towers import MiniLMTower

    root, _, dataset = project
    raw = yaml.safe_load((root / "params.yaml").read_text())
    profile = raw["train"]["profiles"]["smoke-dual"]
    profile["backbone_lr"] = 1e-4
    profile["model"]["text_tune_layers"] = 2
    path = root / "params-lit.yaml"
    path.write_text(yaml.safe_dump(raw))
    params = load_params(path)
    with contextlib.chdir(root):
        result = train(dataset, params, root / "out-lit", progress=False)
    tuned = load_encoder(result.model_dir).model.text_tower.encoder.encoder.layer
    original = MiniLMTower.pretrained().encoder.encoder.layer

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))

    assert [same(t, o) for t, o in zip(tuned, original, strict=True)] == [True] * 4 + [False] * 2


def test_the_tuned_top_reproduces_the_tower_on_cached_states() -> None:
    """The cached-states path equals the tower's own forward (guards a transformers upgrade)."""
    from dove_model.model.towers import MiniLMTower

    tower = MiniLMTower.pretrained().eval()
    texts = ["two white storage tanks next to a road", "a plane", "a long dense residential area"]
    with torch.inference_mode():
        states, mask = tower.states_below_top(texts, 2, tower.token_width(texts) + 3)
        assert torch.allclose(tower.top(2)(states, mask), tower(texts), atol=1e-5)
    with pytest.raises(ConfigError, match="has 6 layers"):
        tower.top(7)


def test_a_shallower_text_tower_trains_saves_and_reloads_at_its_depth(
    project: tuple[Path, Params, Path],
) -> None:
    """``text_depth: 2``: the first two MiniLM layers, mean-pooled, are the text features; the
    model directory rebuilds exactly that tower."""
    from dove_model.model.towers import MiniLMTower

    root, _, dataset = project
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["profiles"]["smoke-dual"]["model"]["text_depth"] = 2
    path = root / "params-depth.yaml"
    path.write_text(yaml.safe_dump(raw))
    with contextlib.chdir(root):
        result = train(dataset, load_params(path), root / "out-depth", progress=False)
    encoder = load_encoder(result.model_dir)
    assert len(encoder.model.text_tower.encoder.encoder.layer) == 2
    texts = ["two white storage tanks next to a road", "a plane parked at a gate"]
    full = MiniLMTower.pretrained().eval()
    with torch.inference_mode():
        batch = full.tokenizer(texts, padding=True, return_tensors="pt")
        states = full.encoder(**batch, output_hidden_states=True).hidden_states[2]
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = (states * mask).sum(1) / mask.sum(1)
        assert torch.allclose(encoder.model.text_tower(texts), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="text_depth 7"):
        MiniLMTower.pretrained(depth=7)


def test_an_attention_pooled_model_caches_maps_trains_its_pool_and_reloads(
    project: tuple[Path, Params, Path],
) -> None:
    """``image_pool: attention``: the cache holds each view's feature map (float16), the heads
    learn the pool, and the model directory rebuilds the unpooled tower and the same pool."""
    from dove_model.families.dual.fit import load_features
    from dove_model.model.views import dihedral_views

    root, _, dataset = project
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["profiles"]["smoke-dual"]["model"]["image_pool"] = "attention"
    raw["train"]["cache_dir"] = str(root / "cache-attention")
    path = root / "params-attention.yaml"
    path.write_text(yaml.safe_dump(raw))
    with contextlib.chdir(root):
        result = train(dataset, load_params(path), root / "out-attention", progress=False)
    cached = [load_features(f) for f in (root / "cache-attention").glob("dual-*.pt")]
    assert len(cached) == 2 and all(f.maps and f.image_views.dtype == torch.float16 for f in cached)
    encoder = load_encoder(result.model_dir)
    pool = encoder.model.heads.image_pool
    assert pool is not None and pool.score.abs().sum() > 0
    assert result.best_metrics["mR"] > result.random_chance_mR
    model, pixels = encoder.model, torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        maps = model.image_tower(pixels)
        assert maps.dim() == 4  # the tower hands over its maps; the heads pool them
        views = dihedral_views(pixels, model.params.tta_rotations, model.params.tta_mirror)
        expected = torch.stack([pool(model.image_tower(view)) for view in views]).mean(0)
        assert torch.allclose(model.image_features(pixels), expected, atol=1e-5)


def test_attention_pooling_needs_a_timm_image_tower() -> None:
    from dove_model.families.dual.settings import DualSettings

    assert DualSettings(family="dual").image_pool == "mean"  # old directories: mean
    with pytest.raises(ValueError, match="image_pool attention needs a timm image tower"):
        DualSettings(
            family="dual",
            text_tower="open_clip",
            clip_arch="ViT-B-32",
            clip_checkpoint="x.pt",
            image_pool="attention",
        )


def test_a_one_cycle_checkpoint_cannot_be_stretched_to_more_epochs(
    project: tuple[Path, Params, Path], trained
) -> None:
    """The heads' schedule spans the run it was planned for: resuming it under another
    length is a clear error (a killed run resumed as it was: tests/unit/test_family_contract)."""
    root, params, dataset = project
    raw = params.model_dump(mode="json", by_alias=True)
    raw["train"]["profiles"]["smoke-dual"]["epochs"] = 5
    longer = root / "longer.yaml"
    longer.write_text(yaml.safe_dump(raw))
    with contextlib.chdir(root), pytest.raises(ConfigError, match="one-cycle schedule was planned"):
        train(dataset, load_params(longer), root / "out", progress=False)
