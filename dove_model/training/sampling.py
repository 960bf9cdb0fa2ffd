"""Which captions each training step sees: a permutation per (seed, epoch), so that a
resumed run sees the batches an uninterrupted one would, split across DDP ranks."""

from __future__ import annotations

import numpy as np


def epoch_batches(
    n_captions: int,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    *,
    keep_tail: bool = False,
) -> list[np.ndarray]:
    """Caption indices per step for this rank. The last short batch is dropped (a contrastive
    step needs negatives: it is kept when there is no full batch, or with ``keep_tail``, when
    each rank gets at least 2 of it)."""
    order = np.random.default_rng([seed, epoch]).permutation(n_captions)
    n_full = n_captions // batch_size
    batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n_full)]
    tail = order[n_full * batch_size :]
    if len(tail) >= 2 * world_size and (keep_tail or not batches):
        batches.append(tail)
    return [b[rank::world_size] for b in batches]
