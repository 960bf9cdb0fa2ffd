"""Drift of the query embeddings from the training captions' embeddings.

The statistic: the unbiased squared maximum mean discrepancy (MMD^2, Gretton et al. 2012)
between the window's query embeddings and a sample of training-caption embeddings, with an
RBF kernel whose bandwidth is the median pairwise distance within the reference sample
(L2-normalised embeddings). Drift is flagged when MMD^2 exceeds ``mmd_threshold``, or when
more than ``max_far_share`` of the queries are far from every training caption (best cosine
below ``far_cosine``). Fewer than ``min_queries`` queries give no verdict (``drifted`` None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dove_model.loop_params import MonitoringParams


def normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def median_bandwidth(reference: np.ndarray) -> float:
    d = np.sqrt(_sq_dists(reference, reference))
    upper = d[np.triu_indices_from(d, k=1)]
    return float(np.median(upper)) if upper.size and np.median(upper) > 0 else 1.0


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD^2 of samples ``x`` (n, d) and ``y`` (m, d) under an RBF kernel."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least two samples on each side")
    gamma = 1.0 / (2.0 * bandwidth**2)
    kxx = np.exp(-gamma * _sq_dists(x, x))
    kyy = np.exp(-gamma * _sq_dists(y, y))
    kxy = np.exp(-gamma * _sq_dists(x, y))
    xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(xx + yy - 2.0 * kxy.mean())


@dataclass(frozen=True)
class Drift:
    n_queries: int
    n_reference: int
    mmd2: float | None
    mmd_threshold: float
    far_share: float | None  # queries whose best caption cosine is below far_cosine
    far_cosine: float
    mean_cosine_shift: float | None  # 1 - cos(mean query, mean caption): a plain second view
    drifted: bool | None  # None: too few queries for a verdict

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def measure_drift(queries: np.ndarray, reference: np.ndarray, params: MonitoringParams) -> Drift:
    """The drift of ``queries`` from ``reference`` (both (n, d) embeddings, any scale)."""
    q, r = normalised(queries), normalised(reference)
    if len(q) < max(params.min_queries, 2) or len(r) < 2:
        return Drift(
            len(q), len(r), None, params.mmd_threshold, None, params.far_cosine, None, None
        )
    stat = mmd2(q, r, median_bandwidth(r))
    far = float(((q @ r.T).max(axis=1) < params.far_cosine).mean())
    centre_q, centre_r = q.mean(0), r.mean(0)
    cos = centre_q @ centre_r / max(np.linalg.norm(centre_q) * np.linalg.norm(centre_r), 1e-12)
    drifted = stat > params.mmd_threshold or far > params.max_far_share
    return Drift(
        len(q), len(r), stat, params.mmd_threshold, far, params.far_cosine, float(1 - cos), drifted
    )
