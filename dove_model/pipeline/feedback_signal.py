"""Retraining on signal (the work behind dags/dove_feedback_signal.py and ``dove feedback``).

``monitor_champion``: the daily drift report of the champion's queries. ``export_on_signal``:
when enough new relevant pairs wait (``feedback.retrain_min_new_pairs``), or the last report
says the queries drifted and any new pair waits, export the feedback into a new data version
(through the GE gates); the DAG then posts the data asset event that schedules the
retraining DAG (its existing data-triggered path). ``feedback_gate_refusal``: the champion vs
challenger check on the users' own held-out pairs, applied before a promotion.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dove_model.config import Params, load_params

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signal:
    new_pairs: int  # relevant train pairs not in the current export
    drifted: bool | None  # the last monitoring report's verdict (None: none yet)
    fire: bool
    reasons: list[str] = field(default_factory=list)


def _params(project_root: str, params_file: str) -> tuple[Params, Path]:
    root = Path(project_root).resolve()
    return load_params(root / params_file), root


def last_drift(params: Params, root: Path) -> bool | None:
    latest = root / params.monitoring.report_dir / "latest.json"
    if not latest.is_file():
        return None
    return json.loads(latest.read_text(encoding="utf-8")).get("drift", {}).get("drifted")


def retraining_signal(params: Params, root: Path, pairs: pd.DataFrame) -> Signal:
    """Whether ``pairs`` (collected now) and the last report call for a new data version."""
    from dove_model.data.feedback_rows import PAIRS_FILE, TRAIN

    exported = root / params.feedback.export.dir / PAIRS_FILE
    done = set(pd.read_parquet(exported)["pair_id"]) if exported.is_file() else set()
    fresh = pairs[(pairs["role"] == TRAIN) & pairs["relevant"].astype(bool)]
    new = int((~fresh["pair_id"].isin(done)).sum())
    drifted = last_drift(params, root)
    need = params.feedback.retrain_min_new_pairs
    reasons = []
    if new >= need:
        reasons.append(f"{new} new relevant pairs (>= {need})")
    if drifted and new > 0:
        reasons.append(f"query drift in the last report, {new} new relevant pairs")
    return Signal(new, drifted, bool(reasons), reasons)


def export_on_signal(
    project_root: str, params_file: str = "params.yaml", env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Export the feedback into a new data version when the signal fires; the result says
    whether it did (``fired``) and why."""
    from dove_model.data.manifest import read_manifest
    from dove_model.data.prepare import prepare
    from dove_model.feedback.export import collect_pairs, export_feedback
    from dove_model.feedback.store import open_store

    params, root = _params(project_root, params_file)
    with contextlib.chdir(root):
        dataset = prepare(params, progress=False)
        store = open_store(params.feedback.query_log, os.environ if env is None else env)
        try:
            queries, marks = store.queries(), store.feedback()
            pairs, _ = collect_pairs(queries, marks, read_manifest(dataset))
            signal = retraining_signal(params, root, pairs)
            out: dict[str, Any] = {"fired": False, **asdict(signal)}
            if not signal.fire:
                return out
            result = export_feedback(params, store, dataset, root)
        finally:
            store.close()
    if not result.passed:
        failed = [c.name for c in result.checks if c.failed_critical]
        return out | {"reasons": [*signal.reasons, f"export refused by {failed}"]}
    return out | {"fired": True, "data_version": result.data_version, "counts": result.counts}


def _encoder_of(params: Params, root: Path, version: str, dst: Path) -> Any:
    from dove_model.families.dispatch import load_encoder
    from dove_model.registry.promotion import download_version

    return load_encoder(download_version(params, version, dst / version, root=root))


def feedback_gate_refusal(params: Params, root: Path, model_version: str) -> str | None:
    """Why ``model_version`` must not replace the champion on the users' held-out pairs
    (dove_model/feedback/gate.py); None when it may (or there is nothing to compare)."""
    from dove_model.data.feedback_rows import PAIRS_FILE
    from dove_model.data.prepare import prepared_dataset_dir
    from dove_model.feedback.gate import check_feedback_gate, eval_pairs, feedback_recall
    from dove_model.registry.promotion import resolve_champion

    pairs_file = root / params.feedback.export.dir / PAIRS_FILE
    if not pairs_file.is_file():
        return None
    pairs = pd.read_parquet(pairs_file)
    try:
        champion = str(resolve_champion(params, root=root).version)
    except Exception:  # no champion yet: nothing to compare with
        return None
    if champion == str(model_version) or eval_pairs(pairs).empty:
        return None
    dataset = root / prepared_dataset_dir(params.data)
    with tempfile.TemporaryDirectory(prefix="dove-feedback-gate-") as tmp:
        scores = {
            version: feedback_recall(_encoder_of(params, root, version, Path(tmp)), dataset, pairs)
            for version in (champion, str(model_version))
        }
    decision = check_feedback_gate(
        scores[str(model_version)], scores[champion], params.register_.gates.max_regression
    )
    log.info("feedback gate for v%s: %s", model_version, decision.reason)
    return None if decision.passed else decision.reason


def monitor_champion(project_root: str, params_file: str = "params.yaml") -> dict[str, Any]:
    """The monitoring report of the champion's queries (None-valued when no champion)."""
    from dove_model.data.manifest import read_manifest
    from dove_model.data.prepare import prepared_dataset_dir
    from dove_model.families.dispatch import load_encoder
    from dove_model.feedback.store import open_store
    from dove_model.monitoring.report import monitor, write_report
    from dove_model.pipeline.steps import download_champion_labelled

    params, root = _params(project_root, params_file)
    with contextlib.chdir(root), tempfile.TemporaryDirectory(prefix="dove-monitor-") as tmp:
        try:
            model_dir, labels = download_champion_labelled(params, Path(tmp), root=root)
        except Exception as exc:  # no registry or no champion yet
            return {"report": None, "reason": str(exc)[:300]}
        encoder = load_encoder(model_dir)
        manifest = read_manifest(prepared_dataset_dir(params.data))
        texts = manifest.loc[manifest["split"] == "train", "caption"].dropna()
        sample = texts.sample(
            min(len(texts), params.monitoring.reference_captions),
            random_state=params.monitoring.seed,
        )
        reference = encoder.encode_texts(list(sample)).t_g
        store = open_store(params.feedback.query_log, os.environ)
        try:
            result = monitor(
                store.queries(), store.feedback(), lambda t: encoder.encode_texts(list(t)).t_g,
                reference, labels["model_version"], params.monitoring, datetime.now(UTC),
            )  # fmt: skip
        finally:
            store.close()
        page = write_report(result, params.monitoring, Path(params.monitoring.report_dir))
    return {"report": str(root / page), **result.summary()}
