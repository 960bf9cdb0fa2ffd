"""Coalesce concurrent calls into batches, with no added wait.

The first caller runs at once with a batch of one. Callers that arrive while a batch runs
queue up; when it ends, one of them runs everything queued as the next batch. At concurrency
1 this is a plain call; under load each batch grows to what arrived during the previous one,
so the per-query cost of the small text encoder, FAISS and the re-rank is shared.
(BentoML's adaptive batching instead waits up to ``max_latency_ms`` on a separate endpoint.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class _Call(Generic[In, Out]):
    __slots__ = ("error", "finished", "item", "result")

    def __init__(self, item: In) -> None:
        self.item = item
        self.result: Out | None = None
        self.error: BaseException | None = None
        self.finished = False


class Coalescer(Generic[In, Out]):
    """``coalescer(item)`` returns ``run_batch(items)[i]`` for its own item (thread-safe)."""

    def __init__(self, run_batch: Callable[[list[In]], Sequence[Out]], max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queued: list[_Call[In, Out]] = []
        self._busy = False

    def __call__(self, item: In) -> Out:
        call: _Call[In, Out] = _Call(item)
        with self._cond:
            self._queued.append(call)
            while self._busy and not call.finished:
                self._cond.wait()
            if not call.finished:  # this thread runs the next batch, its own call first
                self._queued.remove(call)
                batch = [call, *self._queued[: self.max_batch - 1]]
                del self._queued[: self.max_batch - 1]
                self._busy = True
        if not call.finished:
            self._run(batch)
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def _run(self, batch: list[_Call[In, Out]]) -> None:
        try:
            results = self.run_batch([c.item for c in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            for c, result in zip(batch, results, strict=True):
                c.result = result
        except BaseException as exc:  # every caller in the batch sees the failure
            for c in batch:
                c.error = exc
        finally:
            with self._cond:
                for c in batch:
                    c.finished = True
                self._busy = False
                self._cond.notify_all()
