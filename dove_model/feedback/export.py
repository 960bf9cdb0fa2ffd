"""``dove feedback export``: the accepted feedback becomes a new data version.

Marks are joined to their searches (the latest mark of a result wins). A mark whose search
kept no text (privacy ``hash``), whose search left the log, or whose image the dataset lacks
is counted and skipped. Each pair gets a role: ``train`` when its image is in the train split,
``eval`` otherwise (the feedback gate's held-out set, never trained on); a train pair whose
query text is also a caption or query of the evaluation side is held out of both (``leak``).
The pairs then pass the feedback suite and the data gate's caption and split suites on the
merged manifest; only when no critical expectation fails are they written into the
DVC-tracked folder and versioned (``dvc add``): a new data version with each pair's
provenance (query id, feedback id, times, client hash, model and index versions).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dove_model.atomic import atomic_path, write_text
from dove_model.config import Params
from dove_model.data.feedback_rows import EVAL, PAIRS_FILE, TRAIN, feedback_rows, write_stamp
from dove_model.data.manifest import coerce_manifest, read_manifest
from dove_model.feedback.records import FeedbackRecord, QueryRecord
from dove_model.feedback.store import LogStore
from dove_model.quality.caption_stats import normalise
from dove_model.quality.ge_runner import CheckOutcome

LEAK = "leak"
REPORT_FILE = "report.json"
PAIR_COLUMNS = [
    "pair_id", "query_id", "feedback_id", "image_id", "caption", "relevant", "rank", "role",
    "marked_at", "searched_at", "client", "model_version", "index_version",
]  # fmt: skip


@dataclass
class ExportResult:
    pairs: pd.DataFrame
    counts: dict[str, int]
    checks: list[CheckOutcome] = field(default_factory=list)
    written: Path | None = None  # the pair file, when the gates passed
    data_version: str | None = None  # the new DVC data version, when versioned

    @property
    def passed(self) -> bool:
        return not any(c.failed_critical for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "counts": self.counts,
            "data_version": self.data_version,
            "checks": [
                {
                    "name": c.name,
                    "severity": c.severity,
                    "success": c.success,
                    "unexpected": c.unexpected_count,
                    "observed": c.observed,
                    "offenders": c.offenders[:10],
                }
                for c in self.checks
            ],
        }


def _pair_id(query_id: str, image_id: str) -> str:
    return hashlib.sha256(f"{query_id}/{image_id}".encode()).hexdigest()[:16]


def _joined(queries: list[QueryRecord], marks: list[FeedbackRecord]) -> pd.DataFrame:
    """One row per marked result (its latest mark) with its search's fields."""
    searches = {q.query_id: q for q in queries}
    latest: dict[tuple[str, str], FeedbackRecord] = {}
    for mark in sorted(marks, key=lambda m: m.at):
        latest[(mark.query_id, mark.image_id)] = mark
    rows = []
    for (query_id, image_id), mark in latest.items():
        search = searches.get(query_id)
        rows.append(
            {
                "pair_id": _pair_id(query_id, image_id),
                "query_id": query_id,
                "feedback_id": mark.feedback_id,
                "image_id": image_id,
                "caption": None if search is None else search.text,
                "relevant": mark.relevant,
                "rank": mark.rank,
                "marked_at": mark.at,
                "searched_at": None if search is None else search.at,
                "client": mark.client,
                "in_log": search is not None,
                "model_version": None if search is None else search.model_version,
                "index_version": None if search is None else search.index_version,
            }
        )
    return pd.DataFrame(rows, columns=[*PAIR_COLUMNS, "in_log"])


def collect_pairs(
    queries: list[QueryRecord], marks: list[FeedbackRecord], manifest: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The usable pairs with their roles, and the counts of what was skipped and why."""
    joined = _joined(queries, marks)
    split_of = manifest.drop_duplicates("image_id").set_index("image_id")["split"].astype(str)
    counts = {
        "marks": len(marks),
        "marked_results": len(joined),
        "skipped_search_not_in_log": int((~joined["in_log"]).sum()),
        "skipped_text_not_kept": int((joined["in_log"] & joined["caption"].isna()).sum()),
    }
    usable = joined[joined["caption"].notna()].copy()
    known = usable["image_id"].isin(split_of.index)
    counts["skipped_unknown_image"] = int((~known).sum())
    pairs = usable[known].copy()
    pairs["role"] = [TRAIN if split_of[i] == "train" else EVAL for i in pairs["image_id"]]
    eval_texts = set(normalise(manifest.loc[manifest["split"] != "train", "caption"].fillna("")))
    eval_texts |= set(normalise(pairs.loc[pairs["role"] == EVAL, "caption"]))
    leaking = (pairs["role"] == TRAIN) & normalise(pairs["caption"]).isin(eval_texts)
    pairs.loc[leaking, "role"] = LEAK
    relevant = pairs["relevant"].astype(bool)
    counts |= {
        "train_pairs": int((relevant & (pairs["role"] == TRAIN)).sum()),
        "eval_pairs": int((relevant & (pairs["role"] == EVAL)).sum()),
        "hard_negatives": int((~relevant & (pairs["role"] != LEAK)).sum()),
        "held_out_leak": int(leaking.sum()),
    }
    return pairs[PAIR_COLUMNS].reset_index(drop=True), counts


def gate_pairs(
    pairs: pd.DataFrame, manifest: pd.DataFrame, params: Params, docs_dir: Path | None = None
) -> list[CheckOutcome]:
    """The feedback suite on the pairs, and the data gate's caption and split suites on the
    manifest with the pairs merged in (what ``prepare`` will produce)."""
    from dove_model.feedback.expectations import feedback_checks, feedback_tables
    from dove_model.quality.caption_stats import caption_facts, split_facts
    from dove_model.quality.ge_runner import run_suites
    from dove_model.quality.suites import caption_checks, split_checks

    expectations = params.feedback.export.expectations
    rows = feedback_rows(manifest, pairs).drop(columns=["pair_id"])
    merged = coerce_manifest(pd.concat([manifest, coerce_manifest(rows)]))
    tables = feedback_tables(pairs, expectations)
    tables |= {"captions": caption_facts(merged), "splits": split_facts(merged)}
    suites = feedback_checks(expectations)
    suites |= {
        "captions": caption_checks(params.validate_),
        "splits": split_checks(params.validate_),
    }
    return run_suites(tables, suites, docs_dir=docs_dir)


def export_feedback(
    params: Params,
    store: LogStore,
    dataset_dir: Path,
    repo_root: Path | None = None,
    *,
    push: bool = False,
) -> ExportResult:
    """Collect, gate, and (when the gates pass) write and version the feedback pairs."""
    manifest = read_manifest(dataset_dir)
    pairs, counts = collect_pairs(store.queries(), store.feedback(), manifest)
    export = params.feedback.export
    report_dir = Path(export.report_dir)
    result = ExportResult(pairs, counts, gate_pairs(pairs, manifest, params, report_dir / "docs"))
    if result.passed:
        root = repo_root or Path(".")
        with atomic_path(root / export.dir / PAIRS_FILE, suffix=".parquet") as tmp:
            pairs.to_parquet(tmp, index=False)
        result.written = root / export.dir / PAIRS_FILE
        write_text(root / export.dir / REPORT_FILE, json.dumps({"counts": counts}, indent=2) + "\n")
        write_stamp(root / export.stamp, Path(export.dir) / PAIRS_FILE, len(pairs))
        if repo_root is not None and (repo_root / ".dvc").is_dir():
            from dove_model.data.versioning import version_data

            result.data_version = version_data(repo_root, push=push).md5
    report = json.dumps(result.to_json(), indent=2, default=str) + "\n"
    write_text(report_dir / "summary.json", report)
    return result
