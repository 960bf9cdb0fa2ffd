"""Coalesce concurrent async calls into batches, with no added wait.

A call made while no batch runs starts one at once, as a batch of one. Calls that arrive
while batches run queue up; when a batch ends, everything queued (up to ``max_batch``) runs
as the next one. At concurrency 1 this is a plain call. Under load each batch grows to what
arrived during the previous one, so the per-query cost of the text encoder, FAISS and the
re-rank is shared. Batches run on a small thread pool (``max_running`` threads), off the
event loop, so waiting requests cost no thread. BentoML's adaptive batching instead waits
up to ``max_latency_ms`` to fill a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class AsyncCoalescer(Generic[In, Out]):
    """``await coalescer(item)`` returns ``run_batch(items)[i]`` for its own item.

    Use from one event loop. ``thread_init`` runs once in each batch thread (per-thread
    settings such as torch's thread count).
    """

    def __init__(
        self,
        run_batch: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch: int = 32,
        max_running: int = 1,
        thread_init: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_running < 1:
            raise ValueError("max_batch and max_running must be at least 1")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_running = max_running
        self._executor = ThreadPoolExecutor(
            max_running, thread_name_prefix="search-batch", initializer=thread_init
        )
        self._queued: list[tuple[In, asyncio.Future[Out]]] = []
        self._running = 0
        self._drainers: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def __call__(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        if self._running < self.max_running:
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)
        return await future

    async def _drain(self) -> None:
        """Run queued batches until the queue is empty (one of ``max_running`` drainers)."""
        loop = asyncio.get_running_loop()
        try:
            while self._queued:
                batch = self._queued[: self.max_batch]
                del self._queued[: self.max_batch]
                items = [item for item, _ in batch]
                try:
                    results = await loop.run_in_executor(self._executor, self._checked, items)
                except BaseException as exc:  # every caller in the batch sees the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # its client may have gone: the future is cancelled
                        future.set_result(result)
        finally:
            self._running -= 1

    def _checked(self, items: list[In]) -> Sequence[Out]:
        results = self.run_batch(items)
        if len(results) != len(items):
            raise RuntimeError(f"batch of {len(items)} gave {len(results)} results")
        return results
