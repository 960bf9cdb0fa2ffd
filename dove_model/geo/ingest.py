"""``dove archive ingest``: scenes in, georeferenced chips out (docs/data.md).

1. list the scenes of the source (``sources``); skip scenes an earlier run finished;
2. plan each remaining scene in the worker pool (``plan``: bands, grid, stretch); a bad scene
   stops the run here, before anything is written;
3. cut each scene's chips into tasks of whole chip rows and run them in the pool (``chipping``);
   each task reads its chips window by window, so memory does not grow with the scene;
4. write the dataset tables (``outputs``) from every scene's records.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dove_model.geo.chipping import ChipTask, TaskResult, run_task
from dove_model.geo.journal import (
    check_output,
    finish_scene,
    open_output,
    part_file,
    read_records,
    scene_done,
    scene_file,
)
from dove_model.geo.outputs import write_outputs
from dove_model.geo.plan import ScenePlan, plan_scene
from dove_model.geo.settings import IngestParams, SourceQuery
from dove_model.geo.sources import Scene, list_scenes
from dove_model.geo.tiling import chip_count, task_ranges


@dataclass(frozen=True)
class IngestSummary:
    out_dir: Path
    n_scenes: int
    scenes_resumed: int  # finished by an earlier run, not read again
    n_chips: int  # rows of chips.parquet
    n_images: int  # distinct chip images (manifest rows)
    written: int  # chip files written by this run
    existing: int  # chips this run found already written
    skipped_nodata: int
    seconds: float


@dataclass
class _Counts:
    written: int = 0
    existing: int = 0
    skipped: int = 0

    def add(self, result: TaskResult) -> None:
        self.written += result.written
        self.existing += result.existing
        self.skipped += result.skipped


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the main process, which stops handing out tasks and lets the
    running ones finish (their chips recorded) before it exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def _executor(workers: int) -> Iterator[Executor]:
    """Processes for real parallelism; one thread (same code path) for ``workers == 1``."""
    pool: Executor = (
        ProcessPoolExecutor(workers, initializer=_ignore_sigint)
        if workers > 1
        else ThreadPoolExecutor(1)
    )
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _plan_all(pool: Executor, scenes: Sequence[Scene], params: IngestParams) -> list[ScenePlan]:
    return list(pool.map(plan_scene, scenes, [params] * len(scenes)))


def _tasks(plans: Sequence[ScenePlan], out_dir: Path, params: IngestParams) -> list[ChipTask]:
    tasks = []
    for plan in plans:
        rows, cols = chip_count(plan.grid, params.chip_size, params.overlap)
        for start, stop in task_ranges(rows, cols, params.chips_per_task):
            tasks.append(ChipTask(plan, start, stop, out_dir, params))
    return tasks


class _Scenes:
    """Which tasks of each scene are still out; a scene is finished when none is."""

    def __init__(self, tasks: Sequence[ChipTask]) -> None:
        self.ranges: dict[str, list[tuple[int, int]]] = {}
        for task in tasks:
            self.ranges.setdefault(task.plan.scene.key, []).append((task.start, task.stop))
        self.left = {key: len(r) for key, r in self.ranges.items()}

    def done(self, task: ChipTask) -> None:
        key = task.plan.scene.key
        self.left[key] -= 1
        if self.left[key] == 0:
            finish_scene(task.out_dir, key, self.ranges[key])


def _is_recorded(task: ChipTask) -> bool:
    return part_file(task.out_dir, task.plan.scene.key, task.start, task.stop).is_file()


def _run_tasks(
    pool: Executor,
    tasks: Sequence[ChipTask],
    *,
    progress: bool,
    on_task: Callable[[TaskResult], None] | None,
) -> _Counts:
    """Run the tasks an earlier run did not record; finish each scene as its last task ends."""
    scenes, counts = _Scenes(tasks), _Counts()
    todo = [t for t in tasks if not _is_recorded(t)]
    for task in tasks:
        if _is_recorded(task):
            scenes.done(task)
    with tqdm(
        total=sum(t.stop - t.start for t in todo), desc="ingest", unit="chip", disable=not progress
    ) as bar:
        by_future = {pool.submit(run_task, t): t for t in todo}
        pending: set[Future[TaskResult]] = set(by_future)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                counts.add(result)
                bar.update(result.stop - result.start)
                bar.set_postfix(written=counts.written, skipped=counts.skipped, refresh=False)
                scenes.done(by_future[future])
                if on_task is not None:
                    on_task(result)
    return counts


def ingest(
    source: str | Path,
    out_dir: Path | str,
    params: IngestParams | None = None,
    query: SourceQuery | None = None,
    *,
    progress: bool = True,
    on_task: Callable[[TaskResult], None] | None = None,
) -> IngestSummary:
    """Tile every scene of ``source`` into chips in ``out_dir`` (resuming an earlier run).

    ``on_task`` is called in this process after each finished task (the progress hook)."""
    started = time.perf_counter()
    params, query = params or IngestParams(), query or SourceQuery()
    out_dir = Path(out_dir)
    scenes = list({s.key: s for s in list_scenes(str(source), query)}.values())  # once each
    check_output(out_dir, params)
    todo = [s for s in scenes if not scene_done(out_dir, s.key)]
    counts = _Counts()
    with _executor(params.worker_count()) as pool:
        plans = _plan_all(pool, todo, params)
        open_output(out_dir, params, str(source))
        if plans:
            counts = _run_tasks(
                pool, _tasks(plans, out_dir, params), progress=progress, on_task=on_task
            )
    frames = [read_records(scene_file(out_dir, s.key)) for s in scenes]
    chips = write_outputs(out_dir, frames, params.split, str(source))
    return IngestSummary(
        out_dir=out_dir,
        n_scenes=len(scenes),
        scenes_resumed=len(scenes) - len(todo),
        n_chips=len(chips),
        n_images=int(chips["image_id"].nunique()) if len(chips) else 0,
        written=counts.written,
        existing=counts.existing,
        skipped_nodata=counts.skipped,
        seconds=time.perf_counter() - started,
    )
