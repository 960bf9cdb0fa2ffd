"""Optimiser and learning-rate schedule: the backbone's own learning rate and a linear warm-up.

A fine-tuned pretrained backbone wants a far lower learning rate than the freshly initialised
heads (lr 2e-4 on a whole ImageNet backbone overfits UCM's 1,680 images within two epochs), and
a short warm-up so the heads' first, large gradients do not wreck its features. The schedule
is one closed-form factor per optimiser step (warm-up x step decay), so a resumed run lands on
exactly the learning rate an uninterrupted one had.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dove_model.config import TrainProfile


def parameter_groups(model: nn.Module, profile: TrainProfile) -> list[dict]:
    """Trainable parameters: the heads at ``lr``, the backbone (when trained) at ``backbone_lr``."""
    backbone = getattr(model, "backbone", None)
    backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    heads = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids]
    body = [p for p in model.parameters() if p.requires_grad and id(p) in backbone_ids]
    groups = [{"params": heads, "lr": profile.lr, "name": "heads"}]
    if body:
        lr = profile.backbone_lr if profile.backbone_lr is not None else profile.lr
        groups.append({"params": body, "lr": lr, "name": "backbone"})
    return groups


def lr_factor(step: int, steps_per_epoch: int, profile: TrainProfile) -> float:
    """Multiplier of each group's base learning rate before optimiser step ``step`` (0-based)."""
    warmup_steps = math.ceil(profile.warmup_epochs * steps_per_epoch)
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    epoch = step // max(steps_per_epoch, 1)
    return warm * profile.lr_decay ** (epoch // profile.lr_step_epochs)


def build_optimizer(
    model: nn.Module, profile: TrainProfile, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam over the parameter groups and a per-step LambdaLR (call ``scheduler.step()``
    after every optimiser step)."""
    optimizer = torch.optim.Adam(parameter_groups(model, profile))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, profile)
    )
    return optimizer, scheduler
