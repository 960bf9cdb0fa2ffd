"""The geo gate (issue 28): Great Expectations suites on an ingested archive's chip metadata
(``dove archive validate``, the ``archive_validate`` DVC stage, the DAG's ingest task). Writes
``<report_dir>/summary.json`` and the Data Docs site like the data gate; ``passed`` is False
when a critical expectation fails."""

from __future__ import annotations

import time
from pathlib import Path

from dove_model.config import ArchiveChecks
from dove_model.quality.archive_table import archive_tables
from dove_model.quality.validate import ValidationResult, run_gate, timings, write_summary


def validate_archive(
    dataset_dir: Path | str, checks: ArchiveChecks, report_dir: Path | str
) -> ValidationResult:
    """Run the geo suites over ``dataset_dir`` (an ``dove archive ingest`` output)."""
    dataset_dir, report_dir = Path(dataset_dir), Path(report_dir)
    started = time.perf_counter()
    tables = archive_tables(dataset_dir)
    derived = time.perf_counter()
    from dove_model.quality.archive_suites import ARCHIVE_SUITES  # great_expectations

    suites = {name: build(checks) for name, build in ARCHIVE_SUITES.items()}
    outcomes = run_gate(tables, suites, report_dir)
    finished = time.perf_counter()
    archive = tables["archive"].iloc[0]
    result = ValidationResult(
        dataset_dir=dataset_dir,
        report_dir=report_dir,
        checks=outcomes,
        counts={
            "images": int(archive["n_images"]),
            "captions": 0,
            "scenes": int(archive["n_scenes"]),
            "scenes_with_chips": len(tables["scenes"]),
            "chips": int(archive["n_chips"]),
        },
        splits=[],
        seconds=timings(started, derived, finished),
    )
    write_summary(result)
    return result
