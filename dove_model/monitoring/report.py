"""``dove monitor``: the drift of a model version's queries (today's window and one figure per
day before it) and the online proxies, written as a dated HTML report with plots, a JSON
summary and a Prometheus text file (for node_exporter's textfile collector or a push).

Files in ``monitoring.report_dir``: ``report-<day>.html`` (plots inline),
``latest.json`` (what the retraining trigger reads), ``metrics.prom``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from dove_model.atomic import write_text
from dove_model.feedback.records import FeedbackRecord, QueryRecord
from dove_model.loop_params import MonitoringParams
from dove_model.monitoring.drift import Drift, measure_drift
from dove_model.monitoring.window import daily_proxies, window_queries

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, d) query embeddings
LATEST_FILE = "latest.json"
HISTORY_DAYS = 14


@dataclass
class Monitoring:
    model_version: str
    until: datetime
    drift: Drift  # the window ending at ``until``
    daily_drift: dict[str, Drift] = field(default_factory=dict)  # day -> that day's drift
    proxies: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> dict[str, object]:
        mine = self.proxies[self.proxies["model_version"] == self.model_version]
        last = mine.iloc[-1].to_dict() if len(mine) else {}
        return {
            "model_version": self.model_version,
            "until": self.until.isoformat(),
            "drift": self.drift.as_dict(),
            "feedback_share": last.get("feedback_share"),
            "precision_at_k": last.get("precision"),
        }


def monitor(
    queries: list[QueryRecord],
    marks: list[FeedbackRecord],
    encode: Encode,
    reference: np.ndarray,
    model_version: str,
    params: MonitoringParams,
    until: datetime,
) -> Monitoring:
    """Drift of ``model_version``'s queries from ``reference`` (training-caption embeddings
    by the same model), for the window and for each of the last days."""

    def drift_of(end: datetime, days: float) -> Drift:
        window = window_queries(queries, model_version, end, days, params.max_window_queries)
        texts = [q.text for q in window if q.text is not None]
        embedded = encode(texts) if texts else np.zeros((0, reference.shape[1]))
        return measure_drift(embedded, reference, params)

    daily = {}
    for back in range(HISTORY_DAYS - 1, -1, -1):
        end = until - timedelta(days=back)
        daily[end.date().isoformat()] = drift_of(end, 1.0)
    return Monitoring(
        model_version,
        until,
        drift_of(until, params.window_days),
        daily,
        daily_proxies(queries, marks),
    )


def _png(draw: Callable[[object], None]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=100)
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _plots(result: Monitoring, params: MonitoringParams) -> list[tuple[str, str]]:
    days = list(result.daily_drift)
    mmd = [d.mmd2 if d.mmd2 is not None else np.nan for d in result.daily_drift.values()]
    far = [d.far_share if d.far_share is not None else np.nan for d in result.daily_drift.values()]
    mine = result.proxies[result.proxies["model_version"] == result.model_version]

    def drift_plot(ax) -> None:  # type: ignore[no-untyped-def]
        ax.plot(days, mmd, marker="o", label="MMD^2")
        ax.axhline(params.mmd_threshold, color="red", linestyle="--", label="threshold")
        ax.set_ylabel("MMD^2")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.legend(fontsize=7)

    def far_plot(ax) -> None:  # type: ignore[no-untyped-def]
        ax.plot(days, far, marker="o", color="tab:orange")
        ax.axhline(params.max_far_share, color="red", linestyle="--")
        ax.set_ylabel(f"share cos < {params.far_cosine:g}")
        ax.tick_params(axis="x", rotation=60, labelsize=7)

    def proxy_plot(ax) -> None:  # type: ignore[no-untyped-def]
        ax.plot(mine["day"], mine["feedback_share"], marker="o", label="searches with feedback")
        ax.plot(mine["day"], mine["precision"], marker="s", label="precision@k of marks")
        ax.set_ylim(0, 1.05)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.legend(fontsize=7)

    return [
        ("Query drift (MMD^2 to the training captions)", _png(drift_plot)),
        ("Queries far from every training caption", _png(far_plot)),
        ("Online proxies", _png(proxy_plot)),
    ]


def _html(result: Monitoring, params: MonitoringParams) -> str:
    drift = result.drift
    verdict = {True: "DRIFT", False: "no drift", None: "too few queries"}[drift.drifted]
    figures = "".join(
        f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{data}">'
        for title, data in _plots(result, params)
    )
    table = result.proxies.to_html(index=False, float_format=lambda v: f"{v:.3f}")
    summary = html.escape(json.dumps(result.summary(), indent=2, default=str))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>DOVE monitoring {result.until.date()}</title></head><body>"
        f"<h1>Model version {html.escape(result.model_version)}: {verdict}</h1>"
        f"<p>Window: {params.window_days:g} day(s) to {result.until.isoformat()}, "
        f"{drift.n_queries} queries vs {drift.n_reference} training captions; "
        f"MMD^2 threshold {params.mmd_threshold:g}, far share limit {params.max_far_share:g}.</p>"
        f"{figures}<h2>Per model version and day</h2>{table}<pre>{summary}</pre></body></html>"
    )


def _prometheus(result: Monitoring) -> str:
    version = result.model_version.replace('"', "")
    summary = result.summary()
    values = {
        "dove_query_drift_mmd2": result.drift.mmd2,
        "dove_query_far_share": result.drift.far_share,
        "dove_query_drift": None if result.drift.drifted is None else float(result.drift.drifted),
        "dove_feedback_search_share_daily": summary["feedback_share"],
        "dove_feedback_precision_at_k_daily": summary["precision_at_k"],
    }
    lines = []
    for name, value in values.items():
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            lines += [f"# TYPE {name} gauge", f'{name}{{model_version="{version}"}} {value}']
    return "\n".join(lines) + "\n"


def write_report(result: Monitoring, params: MonitoringParams, out_dir: Path) -> Path:
    """The dated HTML report, ``latest.json`` and ``metrics.prom``; returns the HTML's path."""
    page = out_dir / f"report-{result.until.date().isoformat()}.html"
    write_text(page, _html(result, params))
    write_text(out_dir / LATEST_FILE, json.dumps(result.summary(), indent=2, default=str) + "\n")
    write_text(out_dir / "metrics.prom", _prometheus(result))
    return page
