"""Progress lines while the stack starts or stops (rich), and bounded waits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence

from rich.console import Console

from infra.stack.config import StackError
from infra.stack.processes import exited_early
from infra.stack.state import ProcessRecord


class Reporter:
    """One line per step: a spinner while it runs, then what it did and how long it took."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def step(self, name: str, doing: str) -> Iterator[list[str]]:
        """Yields a list: append what to print after the name once the step is done."""
        started = time.monotonic()
        said: list[str] = []
        with self.console.status(f"[bold]{name}[/]: {doing}..."):
            yield said
        seconds = time.monotonic() - started
        self.console.print(
            f"[green]✓[/] [bold]{name:<9}[/] {' '.join(said)} [dim]({seconds:.1f} s)[/]"
        )

    def note(self, text: str) -> None:
        self.console.print(f"  {text}")


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log: str,
    watch: Sequence[ProcessRecord | None] = (),
    interval: float = 0.5,
) -> None:
    """Poll ``ready`` until it holds; a StackError naming the log to read when a watched
    process exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        for record in watch:
            if record is not None and exited_early(record):
                raise StackError(f"{what} exited while starting: read {record.log}")
        if time.monotonic() > deadline:
            raise StackError(f"{what} was not ready after {timeout:.0f} s: read {log}")
        time.sleep(interval)
