"""The work behind the Airflow DAG's ``ingest_archive`` task (issue 28): ingest
``archive.source`` into ``archive.out_dir`` and run the geo gate on it, as the
``pipelines/archive/dvc.yaml`` stages do; nothing while no source is configured. A re-run
resumes or finds the chips already written (content-addressed), so retries are safe."""

from __future__ import annotations

from pathlib import Path

from dove_model.config import load_params
from dove_model.errors import GateFailed
from dove_model.geo.stage import ingest_configured
from dove_model.quality.archive_gate import validate_archive


def ingest_archive(project_root: str, params_file: str = "params.yaml") -> dict[str, str]:
    """An XCom of plain strings: ``path`` ``none`` (no ``archive.source``) or ``ingested``
    with the counts; GateFailed when a critical geo expectation fails."""
    root = Path(project_root).resolve()
    archive = load_params(root / params_file).archive
    if archive.source is None:
        return {"path": "none", "reason": "archive.source is not set"}
    summary = ingest_configured(archive, root, progress=False)
    gate = validate_archive(root / archive.out_dir, archive.checks, root / archive.report_dir)
    if not gate.passed:
        raise GateFailed(gate.failure_message("geo gate"))
    return {
        "path": "ingested",
        "out_dir": str(summary.out_dir),
        "scenes": str(summary.n_scenes),
        "chips": str(summary.n_chips),
        "written": str(summary.written),
        "report": str(gate.summary_file),
    }
