"""The default dataset for ``make demo`` and ``dove data version``: pull or render, version.

A fresh clone has ``data.dvc`` but no ``data/`` (and usually an empty local remote), so
``dvc repro`` cannot start before :func:`ensure_default_data` has pulled or re-rendered it.
The renderer is deterministic, so a re-rendered default matches the committed md5.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console

from dove_model.config import Params
from dove_model.data.prepare import synth_source_dir
from dove_model.data.synth import CAPTIONS_FILE, is_rendered, render_synth
from dove_model.data.versioning import DATA_TARGET, DataVersion, version_data

log = logging.getLogger(__name__)


def _pull(root: Path) -> bool:
    """``dvc pull data.dvc``; False when the remote does not have it (e.g. a fresh clone)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            repo.pull(targets=[str(root / f"{DATA_TARGET}.dvc")])
    except DvcException as exc:
        log.info("dvc pull failed (%s); rendering the synthetic dataset instead", exc)
        return False
    return True


def ensure_default_data(
    params: Params,
    repo_root: Path | str = ".",
    *,
    push: bool = True,
    console: Console | None = None,
) -> DataVersion | None:
    """Make ``data/`` exist and be versioned: pull it from the DVC remote, else render the
    synthetic default; then ``dvc add`` (+ ``dvc push``). Returns the data version (None
    outside a DVC repository). Relative ``data.path`` is taken from ``repo_root``."""
    console = console or Console()
    root = Path(repo_root)
    source = root / synth_source_dir(params.data)
    is_dvc = (root / ".dvc").is_dir() and (root / f"{DATA_TARGET}.dvc").is_file()
    synth = params.data.synth
    missing = params.data.source == "synth" and not is_rendered(source, synth)
    if missing and is_dvc and not (source / CAPTIONS_FILE).is_file() and _pull(root):
        missing = not is_rendered(source, synth)
    if missing:
        summary = render_synth(source, params.data.synth)
        console.print(
            f"rendered the synthetic dataset: {summary.n_images} images in "
            f"{summary.seconds:.1f} s -> {source}"
        )
    if not (root / ".dvc").is_dir():
        return None
    version = version_data(root, push=push)
    console.print(f"data version (DVC md5 of {DATA_TARGET}/): {version.md5}")
    return version
