"""The default dataset end to end, for ``make demo``: render, version, prepare, validate.

``dove_model.demo`` (the pipeline's demo) calls :func:`build_default_dataset`; each step is
also a function of its own (``ensure_synth``, ``version_data``, ``prepare``, ``validate``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from dove_model.config import Params
from dove_model.data.prepare import ensure_synth, prepare
from dove_model.data.versioning import DataVersion, version_data
from dove_model.quality.summary import print_summary
from dove_model.quality.validate import ValidationResult, validate


@dataclass(frozen=True)
class DefaultDataset:
    dataset_dir: Path  # the prepared dataset (train/evaluate read it)
    version: DataVersion | None  # None outside a DVC repository
    validation: ValidationResult


def build_default_dataset(
    params: Params,
    repo_root: Path | str = ".",
    *,
    push: bool = True,
    console: Console | None = None,
) -> DefaultDataset:
    """Render the synthetic dataset if absent, version it with DVC (when ``repo_root`` is a
    DVC repository), prepare it and run the data gate; print a one-screen summary."""
    console = console or Console()
    root = Path(repo_root)
    started = time.perf_counter()
    source = ensure_synth(params.data)
    console.print(f"default dataset: {source} ({time.perf_counter() - started:.1f} s)")
    version = None
    if (root / ".dvc").is_dir():
        version = version_data(root, push=push)
        console.print(f"data version (DVC md5): {version.md5}, {version.pushed} files pushed")
    dataset_dir = prepare(params)
    result = validate(dataset_dir, params, Path(params.validate_.report_dir))
    print_summary(result, console)
    return DefaultDataset(dataset_dir, version, result)
