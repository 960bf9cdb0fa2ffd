"""The default dataset end to end in one call, for tests: version, prepare, validate.

The product runs these as separate stages (``dove data version``, then ``dvc repro``); this
builder chains them and prints the one-screen gate summary, so a test can check the chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from dove_model.config import Params
from dove_model.data.default import ensure_default_data
from dove_model.data.prepare import prepare
from dove_model.data.versioning import DataVersion
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
    """:func:`ensure_default_data`, then prepare and the data gate, with a one-screen summary.
    Paths in ``params`` are taken relative to the current directory (the repository root)."""
    console = console or Console()
    started = time.perf_counter()
    version = ensure_default_data(params, repo_root, push=push, console=console)
    dataset_dir = prepare(params)
    result = validate(dataset_dir, params, Path(params.validate_.report_dir))
    print_summary(result, console)
    console.print(f"default dataset ready in {time.perf_counter() - started:.1f} s: {dataset_dir}")
    return DefaultDataset(dataset_dir, version, result)
