"""The ``validate`` stage: derive the check tables, run the GE suites, write the reports.

Writes ``<report_dir>/summary.json`` and the GE Data Docs site ``<report_dir>/data_docs/``
(both replaced atomically). ``ValidationResult.passed`` is False when any critical
expectation fails; the CLI then exits 1 with :meth:`ValidationResult.failure_message`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dove_model.atomic import atomic_dir, write_text
from dove_model.config import Params
from dove_model.data.manifest import read_manifest
from dove_model.quality.caption_stats import caption_facts, split_facts
from dove_model.quality.ge_runner import CheckOutcome, run_suites
from dove_model.quality.image_table import image_table

if TYPE_CHECKING:  # great_expectations: seconds to import
    from dove_model.quality.suites import Check

SUMMARY_FILE = "summary.json"
DATA_DOCS_DIR = "data_docs"
SHOWN_OFFENDERS = 5  # images / rows named per failed check in the one-line message
_LINE_REF = re.compile(r"^line (\S+) \(image (.+)\)$")


@dataclass(frozen=True)
class ValidationResult:
    dataset_dir: Path
    report_dir: Path
    checks: list[CheckOutcome]
    counts: dict[str, Any]
    splits: list[dict[str, Any]]
    seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return not any(c.failed_critical for c in self.checks)

    @property
    def critical_failures(self) -> list[CheckOutcome]:
        return [c for c in self.checks if c.failed_critical]

    @property
    def warnings(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.success and c.severity == "warning"]

    @property
    def summary_file(self) -> Path:
        return self.report_dir / SUMMARY_FILE

    @property
    def data_docs_index(self) -> Path:
        return self.report_dir / DATA_DOCS_DIR / "index.html"

    def failure_message(self, gate: str = "data gate") -> str:
        """One line naming each failed critical check and its first offending rows."""
        parts = [describe(c) for c in self.critical_failures]
        return f"{self.dataset_dir}: {gate} failed: " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "dataset_dir": str(self.dataset_dir),
            "counts": self.counts,
            "seconds": self.seconds,
            "splits": self.splits,
            "checks": [asdict(c) for c in self.checks],
            "data_docs": f"{DATA_DOCS_DIR}/index.html",
        }


def group_refs(refs: list[str]) -> list[tuple[str, int]]:
    """Group caption refs per image, keeping the order, with the number of rows each names:
    ``["line 3 (image a)", "line 4 (image a)"]`` -> ``[("image a: lines 3, 4", 2)]``."""
    grouped: dict[str, list[str]] = {}
    for ref in refs:
        match = _LINE_REF.match(ref)
        key, line = (match.group(2), match.group(1)) if match else (ref, None)
        grouped.setdefault(key, [])
        if line is not None:
            grouped[key].append(line)
    return [
        (f"image {key}: line{'s' if len(lines) > 1 else ''} {', '.join(lines)}", len(lines))
        if lines
        else (key, 1)
        for key, lines in grouped.items()
    ]


def describe(check: CheckOutcome) -> str:
    """``name (severity): N of M rows: <first offenders> and K more``."""
    if not check.offenders:
        return f"{check.name} ({check.severity}): {check.unexpected_count} of {check.element_count}"
    groups = group_refs(check.offenders)
    shown = groups[:SHOWN_OFFENDERS]
    more = check.unexpected_count - sum(n for _, n in shown)
    tail = f" and {more} more" if more > 0 else ""
    what = f"{check.unexpected_count} of {check.element_count} rows"
    return f"{check.name} ({check.severity}): {what}: {'; '.join(text for text, _ in shown)}{tail}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def validate(
    dataset_dir: Path | str,
    params: Params,
    report_dir: Path | str,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> ValidationResult:
    """Run the data gate over a prepared dataset; see the module docstring for the outputs."""
    settings = params.validate_
    dataset_dir, report_dir = Path(dataset_dir), Path(report_dir)
    started = time.perf_counter()
    manifest = read_manifest(dataset_dir)
    images = image_table(
        manifest,
        dataset_dir,
        sample=settings.sample_images,
        workers=workers or settings.workers,
        progress=progress,
    )
    inspected = time.perf_counter()
    tables = {
        "captions": caption_facts(manifest),
        "images": images,
        "splits": split_facts(manifest),
    }
    from dove_model.quality.suites import SUITES  # great_expectations: seconds to import

    checks = run_gate(tables, {name: build(settings) for name, build in SUITES.items()}, report_dir)
    finished = time.perf_counter()
    result = ValidationResult(
        dataset_dir=dataset_dir,
        report_dir=report_dir,
        checks=checks,
        counts=_counts(manifest, images),
        splits=_jsonable(tables["splits"].to_dict(orient="records")),
        seconds=timings(started, inspected, finished),
    )
    write_summary(result)
    return result


def timings(started: float, inspected: float, finished: float) -> dict[str, float]:
    """Seconds spent deriving the tables, running the expectations, and in all."""
    return {
        "inspect_images": round(inspected - started, 3),
        "expectations": round(finished - inspected, 3),
        "total": round(finished - started, 3),
    }


def run_gate(
    tables: dict[str, pd.DataFrame], suites: dict[str, list[Check]], report_dir: Path
) -> list[CheckOutcome]:
    """Run ``suites`` over ``tables``; the Data Docs site replaces ``report_dir/data_docs``."""
    report_dir.mkdir(parents=True, exist_ok=True)
    with atomic_dir(report_dir / DATA_DOCS_DIR) as docs_tmp:
        return run_suites(tables, suites, docs_dir=docs_tmp)


def write_summary(result: ValidationResult) -> None:
    write_text(result.summary_file, json.dumps(_jsonable(result.to_json()), indent=2) + "\n")


def _counts(manifest: pd.DataFrame, images: pd.DataFrame) -> dict[str, Any]:
    per_split = images.groupby("split")["image_id"].size().to_dict()
    return {
        "images": len(images),
        "captions": len(manifest),
        "images_decoded": int(images["decode_ok"].notna().sum()),
        "images_missing": int((~images["file_exists"]).sum()),
        "images_per_split": {str(k): int(v) for k, v in per_split.items()},
    }
