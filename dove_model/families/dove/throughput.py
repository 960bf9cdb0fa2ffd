"""The DOVE training step's own speed (``bench/bench_train.py``, ``bench/gpu_check.sh``)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dove_model.config import Params
from dove_model.errors import ConfigError
from dove_model.families.dove.settings import DoveSettings
from dove_model.families.dove.step import train_step
from dove_model.families.dove.train import DoveTrainer
from dove_model.training.run import TrainingRun, TrainRequest
from dove_model.training.sampling import epoch_batches


@dataclass(frozen=True)
class StepThroughput:
    """The training step's own speed: forward, backward and optimiser, data loading excluded."""

    samples_per_s: float
    steps: int
    batch_size: int
    peak_memory_gib: float | None  # on a GPU: the steps' peak allocation


def step_throughput(
    dataset_dir: Path | str, params: Params, *, steps: int = 20, warmup: int = 3
) -> StepThroughput:
    """Time ``steps`` DOVE training steps of the active profile (after ``warmup`` untimed
    ones) on batches decoded once and kept on the device, so that what is measured is the
    model's step (its precision, its kernels), not the image loader. The weights it updates
    are thrown away."""
    settings = params.model_for_training()
    if not isinstance(settings, DoveSettings):
        raise ConfigError(f"step_throughput times DOVE's step, not a {settings.family} model's")
    with tempfile.TemporaryDirectory(prefix="dove-steps-") as nowhere:  # nothing is saved
        request = TrainRequest(Path(dataset_dir), params, Path(nowhere), resume=False)
        trainer = DoveTrainer(TrainingRun(request), settings)
        opt = trainer.optimisation()
    run, profile = trainer.run, trainer.profile
    dataset = trainer.dataset(None)
    order = epoch_batches(run.train_split.n_captions, profile.batch_size, run.seed, 1)
    if not order:
        raise ConfigError("step_throughput: the train split has fewer captions than one batch")
    batches = [
        {k: v.to(run.device) for k, v in dataset[order[i % len(order)]].items()}
        for i in range(min(len(order), steps + warmup))
    ]
    trainer.model.train()
    cuda = run.device.type == "cuda"

    def step(i: int) -> None:
        where = (params.train.profile, 1, i + 1)
        train_step(opt, batches[i % len(batches)], profile, run.device, where)

    for i in range(warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize(run.device)
        torch.cuda.reset_peak_memory_stats(run.device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    if cuda:
        torch.cuda.synchronize(run.device)
    seconds = time.perf_counter() - start
    samples = sum(len(batches[(warmup + i) % len(batches)]["ids"]) for i in range(steps))
    peak = torch.cuda.max_memory_allocated(run.device) / 2**30 if cuda else None
    return StepThroughput(samples / seconds, steps, profile.batch_size, peak)
