"""Failures that cross the process boundary of a pipeline task, by exception type.

A task runs in its own process (a container on Kubernetes, a subprocess under KFP's local
runner), so the orchestrator only learns that it failed. Each step therefore records the
:class:`~dove_model.errors.DoveError` it raises (its class, message and exit code) in
``failure.json`` beside its outputs, and the local runner turns that record back into the
same exception class: a failed data gate stays a ``GateFailed`` (exit code 1) without
anyone reading the text of an error message.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from dove_model.atomic import write_text
from dove_model.errors import DoveError

FAILURE_FILE = "failure.json"  # in the task's output folder: <run>/<task>/failure.json
LIBRARY_PACKAGE = "dove_model"  # error classes are looked up only in the library


@dataclass(frozen=True)
class StepFailure:
    """What a failed step recorded: which task, which exception class, and its message."""

    task: str
    error_type: str  # "<module>.<qualified name>", e.g. "dove_model.errors.GateFailed"
    message: str
    exit_code: int

    def error(self) -> DoveError:
        """The recorded exception, re-created with its own class (DoveError if unknown)."""
        error = error_class(self.error_type)(f"{self.task}: {self.message}")
        error.exit_code = self.exit_code
        return error


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def error_class(name: str) -> type[DoveError]:
    """The DoveError subclass called ``name``; plain DoveError for anything else (a module
    outside the library is never imported on the word of a file)."""
    module, _, attribute = name.rpartition(".")
    if module.split(".")[0] != LIBRARY_PACKAGE:
        return DoveError
    try:
        found = getattr(importlib.import_module(module), attribute, None)
    except ImportError:
        return DoveError
    return found if isinstance(found, type) and issubclass(found, DoveError) else DoveError


@contextlib.contextmanager
def recorded_failure(output_path: str | Path) -> Iterator[None]:
    """Run a step's body; a DoveError it raises is written to ``failure.json`` in the task's
    output folder (the parent of ``output_path``, one of the task's outputs), then re-raised."""
    try:
        yield
    except DoveError as exc:
        task_dir = Path(output_path).parent
        record = StepFailure(task_dir.name, qualified_name(type(exc)), str(exc), exc.exit_code)
        write_text(task_dir / FAILURE_FILE, json.dumps(asdict(record), indent=2) + "\n")
        raise


def read_failures(run_dir: Path) -> list[StepFailure]:
    """The failures recorded by the tasks of one pipeline run, in task-name order."""
    failures = []
    for path in sorted(Path(run_dir).glob(f"*/{FAILURE_FILE}")):
        try:
            failures.append(StepFailure(**json.loads(path.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, TypeError):
            continue  # not one of ours: the caller reports the run as failed anyway
    return failures
