"""The DOVE model: shapes, ablation switches, loss, gradients, vocabulary, boxes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dove_model.errors import ConfigError
from dove_model.families.dove.loss import ranking_loss
from dove_model.families.dove.model import DoveModel
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.visual import (
    Backbone,
    create_timm_backbone,
    grid_boxes,
    load_boxes_file,
)
from dove_model.families.dove.vocab import UNK_ID, Vocabulary

TINY = {"backbone": "resnet18", "embed_dim": 16, "word_dim": 8, "vocab_min_freq": 1}
CAPTIONS = ["a red house near a river", "green field with trees", "a grey road"]


def tiny_model(**overrides: object) -> tuple[DoveModel, Vocabulary]:
    torch.manual_seed(0)
    params = DoveSettings(**{**TINY, **overrides})
    vocab = Vocabulary.build(CAPTIONS, min_freq=1, max_len=params.max_len)
    return DoveModel(params, len(vocab)), vocab


def test_shapes_and_unit_vectors() -> None:
    model, vocab = tiny_model()
    image = model.encode_image(torch.randn(2, 3, 64, 64))
    text = model.encode_text(*vocab.encode_batch(CAPTIONS))
    assert image.v_m.shape == image.v_mr.shape == image.r.shape == (2, 16)
    assert text.t_g.shape == (3, 16) and text.words.shape == (3, 47, 16)
    assert torch.allclose(image.v_mr.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(text.t_g.norm(dim=-1), torch.ones(3), atol=1e-5)
    scores = model.score(image, text)
    assert scores.shape == (2, 3) and scores.abs().max() <= 1.0 + 1e-5
    pairs = model.pair_score(image, text.__class__(text.t_g[:2], text.words[:2], text.mask[:2]))
    assert torch.allclose(pairs, scores.diagonal()[:2], atol=1e-5)


def test_text_score_depends_on_the_image_through_iga() -> None:
    model, vocab = tiny_model()
    image = model.encode_image(torch.randn(2, 3, 64, 64))
    text = model.encode_text(*vocab.encode_batch(CAPTIONS[:1]))
    # same V_MR, different region guide r -> a different score
    swapped = image.__class__(image.v_m, image.v_mr, image.r.flip(0))
    assert not torch.allclose(model.score(image, text), model.score(swapped, text))


@pytest.mark.parametrize(
    "switch",
    [
        {},
        {"use_roam": False},
        {"use_dtga": False},
        {"lambda_g": 0.0},
        {"share_attention": True},
        {"global_fusion": "learned"},
        {"hardest_negative": True},
        {"region_level": "C4", "region_grids": [6]},
    ],
)
def test_every_switch_trains_one_step(switch: dict) -> None:
    model, vocab = tiny_model(**switch)
    ids, lengths = vocab.encode_batch([*CAPTIONS, CAPTIONS[0]])
    images = torch.randn(3, 3, 64, 64)
    loss = model(ids, lengths, torch.tensor([0, 1, 2, 0]), images=images)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable)
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_ablations_remove_their_modules() -> None:
    assert tiny_model(use_roam=False)[0].iga is None
    assert tiny_model(use_dtga=False)[0].text.dtga is None
    assert tiny_model()[0].text.dtga is not None


def test_unfrozen_backbone_gets_gradients() -> None:
    model, vocab = tiny_model(freeze_backbone=False)
    ids, lengths = vocab.encode_batch(CAPTIONS[:2])
    model(ids, lengths, torch.tensor([0, 1]), images=torch.randn(2, 3, 64, 64)).backward()
    assert any(p.grad is not None for p in model.backbone.parameters())


def test_ranking_loss_sum_hardest_and_positives() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.0, 0.5, 0.6], [0.9, 0.2, 0.7]])
    positive = torch.eye(3, dtype=torch.bool)
    summed = ranking_loss(scores, positive, 0.2, hardest_negative=False)
    hardest = ranking_loss(scores, positive, 0.2, hardest_negative=True)
    # by hand: rows (image->captions) then columns (caption->images)
    rows = (0.1 + 0.0) + (0.0 + 0.3) + (0.4 + 0.0)
    cols = (0.0 + 0.2) + (0.5 + 0.0) + (0.0 + 0.1)
    assert summed.item() == pytest.approx(rows + cols)
    assert hardest.item() == pytest.approx((0.1 + 0.3 + 0.4) + (0.2 + 0.5 + 0.1))
    both = positive.clone()
    both[0, 2] = both[2, 0] = True  # duplicate image: never a negative
    assert ranking_loss(scores, both, 0.2, False) < summed


def test_vocabulary_bad_captions(tmp_path: Path) -> None:
    vocab = Vocabulary.build(["a house", "a house", "a tree"], min_freq=2, max_len=47)
    assert set(vocab.word2idx) == {"<pad>", "<unk>", "a", "house"}
    assert vocab.encode("") == [UNK_ID]
    assert vocab.encode("zebra quux!") == [UNK_ID, UNK_ID]
    assert len(vocab.encode("house " * 1000)) == 47
    ids, lengths = vocab.encode_batch(["", "A HOUSE.", "house " * 1000])
    assert ids.shape == (3, 47) and lengths.tolist() == [1, 2, 47]
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        Vocabulary.load(tmp_path / "bad.json")


def test_grid_and_detector_boxes(tmp_path: Path) -> None:
    assert grid_boxes([2, 3, 4]).shape == (29, 4)
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"a": [[0, 0, 0.5, 0.5]] * 36, "b": [[0.2, 0.2, 1, 1]] * 36}))
    boxes = load_boxes_file(path, ["a", "b"])
    assert boxes.shape == (2, 36, 4)
    model, _ = tiny_model()
    out = model.encode_image(torch.randn(2, 3, 64, 64), boxes)
    assert out.v_mr.shape == (2, 16)
    with pytest.raises(ConfigError, match="no boxes for image 'c'"):
        load_boxes_file(path, ["c"])
    path.write_text(json.dumps({"a": [[0, 0, 2, 2]]}))
    with pytest.raises(ConfigError, match=r"boxes\.json"):
        load_boxes_file(path, ["a"])


def test_pretrained_without_weights_says_what_is_missing(tmp_path: Path) -> None:
    params = DoveSettings(**TINY, pretrained=True, pretrained_path=str(tmp_path / "none.pth"))
    with pytest.raises(ConfigError, match=r"none\.pth.*pretrained"):
        create_timm_backbone(params)


def test_pretrained_weights_from_a_local_file(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False)
    weights_file = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights_file))
    params = DoveSettings(**TINY, pretrained=True, pretrained_path=str(weights_file))
    backbone = create_timm_backbone(params)
    assert torch.equal(backbone.conv1.weight, source.conv1.weight)


def turned_backbone(rotations: int, **overrides: object) -> Backbone:
    torch.manual_seed(0)
    params = DoveSettings(**{**TINY, "region_grids": [2, 3], **overrides}, tta_rotations=rotations)
    return Backbone(params).eval()


def test_quarter_turn_views_make_the_features_turn_with_the_image() -> None:
    """Four views: a turned image gives the same global features and the same regions, each
    found where the turn moved it (the maps are turned back before pooling)."""
    image = torch.randn(2, 3, 64, 64)
    turned = torch.rot90(image, 1, (-2, -1))
    with torch.no_grad():
        four, four_turned = turned_backbone(4)(image), turned_backbone(4)(turned)
        one, one_turned = turned_backbone(1)(image), turned_backbone(1)(turned)
    assert torch.allclose(four.levels, four_turned.levels, atol=1e-4)
    moved = torch.cat([torch.rot90(torch.arange(g * g).view(g, g), 1).flatten() for g in (2, 3)])
    moved[4:] += 4  # the 3 x 3 grid's boxes follow the 2 x 2 grid's four
    assert torch.allclose(four_turned.regions, four.regions[:, moved], atol=1e-4)
    assert not torch.allclose(four.regions, four.regions[:, moved], atol=1e-4)
    # one view: the features are the image's own, not invariant to the turn
    assert not torch.allclose(one.levels, one_turned.levels, atol=1e-2)
    assert not torch.allclose(four.levels, one.levels, atol=1e-2)


def test_a_trained_backbone_sees_one_view_per_step_and_views_need_square_images() -> None:
    image = torch.randn(2, 3, 64, 64)
    trained, single = turned_backbone(4, freeze_backbone=False), turned_backbone(1)
    trained.train(), single.train()
    assert torch.allclose(trained(image).levels, single(image).levels)
    with pytest.raises(ValueError, match="square"):
        turned_backbone(4)(torch.randn(1, 3, 64, 48))


def test_the_feature_cache_key_names_the_views_and_keeps_single_view_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib

    from dove_model.families.dove import feature_cache
    from dove_model.model.preprocess import Preprocessing

    monkeypatch.setattr(feature_cache, "split_digest", lambda split: "images")
    prep = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    one, four = turned_backbone(1), turned_backbone(4)
    keys = {
        b.rotations: feature_cache.cache_key(None, "r18", b, 64, prep, "grid") for b in (one, four)
    }
    assert keys[1] != keys[4]
    old_parts = {  # a cache written before views existed is still found
        "format": feature_cache.CACHE_FORMAT,
        "images": "images",
        "backbone": "r18",
        "weights": feature_cache.weights_digest(one),
        "image_size": 64,
        "preprocess": prep.to_json(),
        "regions": "grid",
    }
    old_key = hashlib.sha256(json.dumps(old_parts, sort_keys=True).encode()).hexdigest()[:32]
    assert keys[1] == old_key
