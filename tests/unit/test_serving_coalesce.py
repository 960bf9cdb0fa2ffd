"""The coalescer behind batched text search: batches form from calls that arrive while one
runs, every caller gets its own result or the batch's error, and nothing is lost."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dove_model.serving.coalesce import Coalescer


def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_a_lone_call_runs_at_once_as_a_batch_of_one() -> None:
    batches: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        batches.append(items)
        return [i * 10 for i in items]

    coalescer = Coalescer(run)
    assert coalescer(3) == 30
    assert coalescer(4) == 40
    assert batches == [[3], [4]]


def test_calls_arriving_during_a_batch_run_together_next() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            release.wait(10)
        return [i * 10 for i in items]

    coalescer = Coalescer(run, max_batch=32)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalescer, 0)
        _wait_for(lambda: len(batches) == 1)
        rest = [pool.submit(coalescer, i) for i in range(1, 8)]
        _wait_for(lambda: len(coalescer._queued) == 7)
        release.set()
        assert first.result(10) == 0
        assert [f.result(10) for f in rest] == [i * 10 for i in range(1, 8)]
    assert batches[0] == [0]
    assert sorted(batches[1]) == list(range(1, 8))  # one batch, whoever led it
    assert len(batches) == 2


def test_batches_never_exceed_max_batch() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            release.wait(10)
        return items

    coalescer = Coalescer(run, max_batch=3)
    with ThreadPoolExecutor(10) as pool:
        first = pool.submit(coalescer, 0)
        _wait_for(lambda: len(batches) == 1)
        rest = [pool.submit(coalescer, i) for i in range(1, 10)]
        _wait_for(lambda: len(coalescer._queued) == 9)
        release.set()
        assert first.result(10) == 0 and [f.result(10) for f in rest] == list(range(1, 10))
    assert max(len(b) for b in batches) == 3
    assert sorted(i for b in batches for i in b) == list(range(10))


def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    release = threading.Event()
    calls = 0

    def run(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            release.wait(10)
            return items
        if calls == 2:
            raise ValueError("encoder exploded")
        return items

    coalescer = Coalescer(run)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(coalescer, 0)
        _wait_for(lambda: calls == 1)
        failing = [pool.submit(coalescer, i) for i in (1, 2)]
        _wait_for(lambda: len(coalescer._queued) == 2)
        release.set()
        assert first.result(10) == 0
        for future in failing:
            with pytest.raises(ValueError, match="encoder exploded"):
                future.result(10)
    assert coalescer(7) == 7  # not wedged


def test_a_batch_function_returning_the_wrong_count_is_an_error() -> None:
    coalescer = Coalescer(lambda items: [])
    with pytest.raises(RuntimeError, match="batch of 1 gave 0 results"):
        coalescer(1)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(lambda items: items, max_batch=0)
