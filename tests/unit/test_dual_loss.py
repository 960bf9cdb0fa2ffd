"""The dual family's symmetric InfoNCE against small cases computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from dove_model.model.contrastive import info_nce, initial_logit_scale


def scale(value: float) -> torch.Tensor:
    return torch.tensor(math.log(value))


def test_two_matched_pairs_at_scale_one() -> None:
    # logits = identity: each row and column is softmax([1, 0]), the right one at e / (e + 1)
    eye = torch.eye(2)
    expected = math.log(1 + math.exp(-1))
    assert float(info_nce(eye, eye, scale(1.0))) == pytest.approx(expected, abs=1e-6)


def test_captions_of_one_scene_are_positives_of_each_other() -> None:
    # one scene, two captions: images [1,0],[1,0]; texts [1,0],[0,1]; logits rows [1, 0]
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    image_to_text = 0.5 * math.log(1 + math.exp(-1)) + 0.5 * math.log(1 + math.e)
    text_to_image = math.log(2)  # each column is constant: uniform over two positives
    loss = info_nce(images, texts, scale(1.0), torch.tensor([0, 0]))
    assert float(loss) == pytest.approx((image_to_text + text_to_image) / 2, abs=1e-6)


def test_distinct_scenes_give_clips_loss() -> None:
    images, texts = torch.randn(5, 8), torch.randn(5, 8)
    clip = info_nce(images, texts, scale(10.0))
    assert float(info_nce(images, texts, scale(10.0), torch.arange(5))) == pytest.approx(
        float(clip), abs=1e-6
    )
    # and it is the textbook form: mean of the two cross entropies over the diagonal
    logits = (
        10.0
        * torch.nn.functional.normalize(images, dim=-1)
        @ torch.nn.functional.normalize(texts, dim=-1).T
    )
    target = torch.arange(5)
    textbook = (
        torch.nn.functional.cross_entropy(logits, target)
        + torch.nn.functional.cross_entropy(logits.T, target)
    ) / 2
    assert float(clip) == pytest.approx(float(textbook), abs=1e-6)


def test_the_temperature_is_clamped_and_starts_at_clips_value() -> None:
    assert float(initial_logit_scale().detach().exp()) == pytest.approx(1 / 0.07, rel=1e-6)
    eye = torch.eye(2)
    assert float(info_nce(eye, eye, scale(1e6))) == pytest.approx(
        float(info_nce(eye, eye, scale(100.0))), abs=1e-6
    )
