"""The coalescer behind batched text search: batches form from calls that arrive while one
runs, every caller gets its own result or its batch's error, and nothing is lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest

from dove_model.serving.coalesce import AsyncCoalescer


def recording(hold_first: threading.Event | None = None, fail_batch: int | None = None):  # type: ignore[no-untyped-def]
    """A batch function that records its batches; it can hold the first one until released
    and raise in the ``fail_batch``-th one."""
    batches: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        batches.append(list(items))
        if hold_first is not None and len(batches) == 1:
            hold_first.wait(10)
        if fail_batch is not None and len(batches) == fail_batch:
            raise ValueError("encoder exploded")
        return [i * 10 for i in items]

    return run, batches


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def run_async(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), timeout=30))


def test_a_lone_call_runs_at_once_as_a_batch_of_one() -> None:
    run, batches = recording()
    coalescer = AsyncCoalescer(run)

    async def main() -> None:
        assert await coalescer(3) == 30
        assert await coalescer(4) == 40

    run_async(main)
    assert batches == [[3], [4]]


@pytest.mark.parametrize(
    ("calls", "max_batch", "expected"),
    [
        (8, 32, [[0], [1, 2, 3, 4, 5, 6, 7]]),  # all that arrived during batch 1, together
        (10, 3, [[0], [1, 2, 3], [4, 5, 6], [7, 8, 9]]),  # capped, in arrival order
    ],
)
def test_calls_arriving_during_a_batch_run_together_next(
    calls: int, max_batch: int, expected: list[list[int]]
) -> None:
    release = threading.Event()
    run, batches = recording(hold_first=release)
    coalescer = AsyncCoalescer(run, max_batch=max_batch)

    async def main() -> None:
        first = asyncio.ensure_future(coalescer(0))
        await until(lambda: len(batches) == 1)
        rest = [asyncio.ensure_future(coalescer(i)) for i in range(1, calls)]
        await until(lambda: len(coalescer._queued) == calls - 1)
        release.set()
        assert [await first, *await asyncio.gather(*rest)] == [i * 10 for i in range(calls)]

    run_async(main)
    assert batches == expected


def test_two_threads_run_two_batches_at_once() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def run(items: list[int]) -> list[int]:
        started.release()
        release.wait(10)
        return items

    coalescer = AsyncCoalescer(run, max_running=2)

    async def main() -> None:
        calls = [asyncio.ensure_future(coalescer(i)) for i in range(2)]
        for _ in range(2):  # both batches are inside run_batch at the same time
            await asyncio.to_thread(started.acquire, True, 10)
        release.set()
        assert await asyncio.gather(*calls) == [0, 1]

    run_async(main)


def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    release = threading.Event()
    run, batches = recording(hold_first=release, fail_batch=2)
    coalescer = AsyncCoalescer(run)

    async def main() -> None:
        first = asyncio.ensure_future(coalescer(0))
        await until(lambda: len(batches) == 1)
        failing = [asyncio.ensure_future(coalescer(i)) for i in (1, 2)]
        await until(lambda: len(coalescer._queued) == 2)
        release.set()
        assert await first == 0
        for future in failing:
            with pytest.raises(ValueError, match="encoder exploded"):
                await future
        assert await coalescer(7) == 70  # not wedged

    run_async(main)


def test_a_caller_that_goes_away_does_not_break_its_batch() -> None:
    release = threading.Event()
    run, batches = recording(hold_first=release)
    coalescer = AsyncCoalescer(run)

    async def main() -> None:
        first = asyncio.ensure_future(coalescer(0))
        await until(lambda: len(batches) == 1)
        gone, kept = asyncio.ensure_future(coalescer(1)), asyncio.ensure_future(coalescer(2))
        await until(lambda: len(coalescer._queued) == 2)
        gone.cancel()  # a client disconnected
        release.set()
        assert (await first, await kept) == (0, 20)

    run_async(main)


def test_a_batch_function_returning_the_wrong_count_is_an_error() -> None:
    coalescer = AsyncCoalescer(lambda items: [])

    async def main() -> None:
        with pytest.raises(RuntimeError, match="batch of 1 gave 0 results"):
            await coalescer(1)

    run_async(main)


def test_each_batch_thread_is_initialised_once() -> None:
    initialised: list[str] = []
    coalescer = AsyncCoalescer(
        lambda items: [threading.current_thread().name for _ in items],
        thread_init=lambda: initialised.append(threading.current_thread().name),
    )

    async def main() -> None:
        names = [await coalescer(i) for i in range(3)]
        assert len(set(names)) == 1 and names[0].startswith("search-batch")

    run_async(main)
    assert len(initialised) == 1


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_running": 0}])
def test_sizes_must_be_positive(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AsyncCoalescer(lambda items: items, **kwargs)
