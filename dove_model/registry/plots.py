"""PNG plots for MLflow and ``dvc plots``: training curves and recall@K bars."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dove_model.atomic import atomic_path

RECALL_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "mR")


def epoch_rows(history: Any) -> list[dict[str, float]]:
    """Per-epoch numeric values from a training history in any of the usual shapes:
    a list of per-epoch dicts, ``{"epochs": [...]}``, or a dict of per-epoch lists."""
    if isinstance(history, Mapping):
        for key in ("epochs", "history"):
            if isinstance(history.get(key), list):
                return epoch_rows(history[key])
        series = {k: v for k, v in history.items() if isinstance(v, list)}
        if series:
            length = max(len(v) for v in series.values())
            return epoch_rows(
                [{k: v[i] for k, v in series.items() if i < len(v)} for i in range(length)]
            )
        return []
    return [_numbers(item) for item in history if isinstance(item, Mapping)]


def _numbers(item: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric values of one epoch record; nested records become ``val_mR`` and the like."""
    out: dict[str, float] = {}
    for key, value in item.items():
        if isinstance(value, Mapping):
            out |= _numbers(value, f"{prefix}{key}_")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(rows: list[dict[str, float]], out: Path) -> Path:
    """Training loss (left) and validation recalls (right) against the epoch."""
    plt = _figure()
    keys = sorted({k for row in rows for k in row})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key in keys:
        if "loss" in key:
            axis = axes[0]
        elif key.startswith("val") and ("_r" in key or key.endswith("mR")):
            axis = axes[1]
        else:
            continue
        xs = [row.get("epoch", i + 1) for i, row in enumerate(rows) if key in row]
        ys = [row[key] for row in rows if key in row]
        axis.plot(xs, ys, marker="o", label=key)
    axes[0].set_title("training loss")
    axes[1].set_title("validation recall (%)")
    for axis in axes:
        axis.set_xlabel("epoch")
        if axis.lines:
            axis.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out


def recall_bars(metrics: Mapping[str, Any], out: Path) -> Path:
    """Recall@K bars (exhaustive ROAM) for both directions plus mR."""
    plt = _figure()
    keys = [k for k in RECALL_KEYS if isinstance(metrics.get(k), int | float)]
    fig, axis = plt.subplots(figsize=(7, 4))
    bars = axis.bar(keys, [float(metrics[k]) for k in keys], color="tab:blue")
    axis.bar_label(bars, fmt="%.1f", fontsize="small")
    axis.set_ylabel("recall (%)")
    axis.set_ylim(0, 100)
    axis.set_title(f"{metrics.get('split', 'test')} split recall@K")
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out
