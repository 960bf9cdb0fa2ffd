"""torchrun integration: NCCL on GPU, gloo on CPU; a no-op in a single process."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK...)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(info: DistInfo, value: object) -> object:
    """Rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(info: DistInfo, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any (e.g. the time budget ran out)."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def gather_objects(info: DistInfo, value: object) -> list[object]:
    if not info.enabled:
        return [value]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def average_gradients(info: DistInfo, parameters: Iterable[torch.nn.Parameter]) -> None:
    """Data parallelism for a step that is not one ``forward`` (DDP's wrapper needs one):
    each parameter's gradient becomes its mean over the ranks. A no-op in one process."""
    if not info.enabled:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad /= info.world_size
