"""A step's DoveError crosses the task boundary by its class: recorded as JSON beside the
task's outputs, re-created by the orchestrator with the same class and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dove_model.errors import ConfigError, DoveError, GateFailed
from dove_model.pipeline.failures import (
    FAILURE_FILE,
    StepFailure,
    error_class,
    read_failures,
    recorded_failure,
)


def _fail_in(task_dir: Path, error: Exception) -> None:
    task_dir.mkdir(parents=True)
    with pytest.raises(type(error)), recorded_failure(task_dir / "report"):
        raise error


def test_a_failed_gate_comes_back_as_gate_failed_with_its_exit_code(tmp_path: Path) -> None:
    _fail_in(tmp_path / "validate", GateFailed("summary.json: a critical expectation failed"))
    (failure,) = read_failures(tmp_path)
    assert failure == StepFailure(
        "validate",
        "dove_model.errors.GateFailed",
        "summary.json: a critical expectation failed",
        1,
    )
    error = failure.error()
    assert type(error) is GateFailed and error.exit_code == 1
    assert str(error) == "validate: summary.json: a critical expectation failed"


def test_each_task_keeps_its_own_class(tmp_path: Path) -> None:
    _fail_in(tmp_path / "train", ConfigError("params.yaml: bad"))
    _fail_in(tmp_path / "deploy", DoveError("no champion"))
    classes = {f.task: type(f.error()) for f in read_failures(tmp_path)}
    assert classes == {"deploy": DoveError, "train": ConfigError}


def test_an_error_that_is_not_a_dove_error_is_not_recorded(tmp_path: Path) -> None:
    _fail_in(tmp_path / "train", ValueError("a bug"))
    assert read_failures(tmp_path) == []
    assert not (tmp_path / "train" / FAILURE_FILE).exists()


@pytest.mark.parametrize(
    "name",
    [
        "os.system",  # outside the library: never imported on the word of a file
        "dove_model.errors.NoSuchError",
        "dove_model.no_such_module.Error",
        "dove_model.config.Params",  # a class, but not an error
    ],
)
def test_unknown_or_foreign_classes_fall_back_to_dove_error(name: str) -> None:
    assert error_class(name) is DoveError


def test_a_record_that_is_not_ours_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / FAILURE_FILE).write_text(json.dumps({"unexpected": 1}))
    assert read_failures(tmp_path) == []
