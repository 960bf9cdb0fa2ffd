"""Shared test fixtures. Telemetry is off for every service the tests start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"

for _var, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_var, _value)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The real benchmark data beside the repository; skip where it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS} (../shared is absent)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def ucm_dir(shared_datasets: Path) -> Path:
    path = shared_datasets / "ucm-captions"
    if not (path / "dataset.json").is_file():
        pytest.skip(f"UCM-Captions not found at {path}")
    return path
