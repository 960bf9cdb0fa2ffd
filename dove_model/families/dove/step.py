"""DOVE's training step: the model as stepped (DDP-wrapped, compiled), its optimiser and
schedule, and one forward/backward/update with the NaN guard."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel

from dove_model.config import TrainProfile
from dove_model.training.checkpoint import Trainables
from dove_model.training.distributed import DistInfo
from dove_model.training.run import TrainingDiverged
from dove_model.training.schedule import build_optimizer


@dataclass(frozen=True)
class Optimisation:
    """What a train step needs: the model as stepped, the trainable parameters (for
    clipping), the optimiser and its per-step schedule."""

    step_model: torch.nn.Module
    trainable: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    def trainables(self, model: torch.nn.Module) -> Trainables:
        return Trainables(model, self.optimizer, self.scheduler)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


def new_optimiser(
    model: torch.nn.Module, profile: TrainProfile, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    return build_optimizer(model, profile, steps_per_epoch)


def as_stepped(
    model: torch.nn.Module,
    optimiser: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler],
    profile: TrainProfile,
    dist: DistInfo,
    device: torch.device,
) -> Optimisation:
    """The model as stepped: DDP-wrapped (after any resume: DDP broadcasts rank 0's
    weights), compiled if asked."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    step_model: torch.nn.Module = model
    if dist.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        step_model = DistributedDataParallel(model, device_ids=device_ids)
    if profile.compile:
        step_model = torch.compile(step_model)  # type: ignore[assignment]
    return Optimisation(step_model, trainable, optimiser[0], optimiser[1])


def train_step(
    opt: Optimisation,
    batch: dict[str, torch.Tensor],
    profile: TrainProfile,
    device: torch.device,
    where: tuple[str, int, int],
) -> float:
    """Forward, NaN guard, backward, clip, optimiser and schedule step; returns the loss.
    ``where``: (profile name, epoch, step), for the divergence message."""
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if profile.channels_last and "images" in batch:
        batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
    amp = profile.amp and device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = opt.step_model(**batch)
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"training loss became {loss.item()} at epoch {where[1]}, step {where[2]} "
            f"(lr {opt.scheduler.get_last_lr()[0]:g}); lower "
            f"train.profiles.{where[0]}.lr or set grad_clip"
        )
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if profile.grad_clip:
        torch.nn.utils.clip_grad_norm_(opt.trainable, profile.grad_clip)
    opt.optimizer.step()
    opt.scheduler.step()
    return float(loss.item())
