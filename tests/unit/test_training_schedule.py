"""The learning-rate schedule: the backbone's own lr, linear warm-up, step decay."""

from __future__ import annotations

import pytest
import torch

from dove_model.config import TrainProfile
from dove_model.families.dove.model import DoveModel
from dove_model.families.dove.settings import DoveSettings
from dove_model.training.schedule import build_optimizer, lr_factor, parameter_groups

TINY = DoveSettings(backbone="resnet18", embed_dim=16, word_dim=8, freeze_backbone=False)


def test_warm_up_then_step_decay() -> None:
    profile = TrainProfile(model=TINY, lr=1.0, warmup_epochs=0.5, lr_decay=0.5, lr_step_epochs=2)
    factors = [lr_factor(step, 10, profile) for step in range(50)]
    assert factors[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # 5 warm-up steps
    assert factors[5:20] == [1.0] * 15  # epochs 0-1
    assert factors[20:40] == [0.5] * 20 and factors[40:] == [0.25] * 10
    assert lr_factor(3, 10, TrainProfile(model=TINY, warmup_epochs=0)) == 1.0


def test_a_trained_backbone_gets_its_own_learning_rate() -> None:
    model = DoveModel(TINY, vocab_size=20)
    profile = TrainProfile(model=TINY, lr=1e-3, backbone_lr=1e-5)
    heads, body = parameter_groups(model, profile)
    assert (heads["lr"], body["lr"]) == (1e-3, 1e-5)
    assert {id(p) for p in body["params"]} == {id(p) for p in model.backbone.parameters()}
    frozen = DoveModel(TINY.model_copy(update={"freeze_backbone": True}), vocab_size=20)
    assert [g["name"] for g in parameter_groups(frozen, profile)] == ["heads"]
    same = parameter_groups(model, TrainProfile(model=TINY, lr=1e-3))
    assert same[1]["lr"] == 1e-3  # backbone_lr unset: the heads' lr


def test_the_scheduler_steps_per_optimiser_step() -> None:
    model = DoveModel(TINY, vocab_size=20)
    profile = TrainProfile(model=TINY, lr=1e-3, backbone_lr=1e-4, warmup_epochs=1)
    optimizer, scheduler = build_optimizer(model, profile, steps_per_epoch=4)
    seen = []
    for _ in range(5):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx([2.5e-4, 2.5e-5])
    assert seen[3] == pytest.approx([1e-3, 1e-4]) and seen[4] == seen[3]
    assert isinstance(optimizer, torch.optim.Adam)
