"""The ``prepare`` stage: bring the configured source into the canonical layout.

``data.source: synth`` reads the rendered synthetic dataset (``data.path``, default
``data/synth``, the DVC-tracked folder); it is rendered first when absent, so the stage also
works outside a DVC checkout (a KFP container, a test). Other sources are imported with the
parser of that format.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dove_model.config import DataParams, Params
from dove_model.data.feedback_rows import add_feedback
from dove_model.data.importer import import_dataset
from dove_model.data.synth import CAPTIONS_FILE, is_rendered, render_synth
from dove_model.errors import ConfigError

DEFAULT_SYNTH_DIR = Path("data/synth")
log = logging.getLogger(__name__)


def synth_source_dir(data: DataParams) -> Path:
    return Path(data.path) if data.path else DEFAULT_SYNTH_DIR


def ensure_synth(data: DataParams, *, progress: bool = True) -> Path:
    """The rendered synthetic dataset folder; rendered now if it does not exist yet or was
    rendered with other ``data.synth`` settings (then ``dvc add data`` records the change)."""
    folder = synth_source_dir(data)
    if not is_rendered(folder, data.synth):
        if (folder / CAPTIONS_FILE).is_file():
            log.warning("%s was rendered with other data.synth settings: re-rendering", folder)
        render_synth(folder, data.synth, progress=progress)
    return folder


def prepared_dataset_dir(data: DataParams) -> Path:
    """``<data.prepared_dir>/<data.name>``: where ``prepare`` writes the dataset."""
    return Path(data.prepared_dir) / data.name


def dataset_dir_or_prepared(data: DataParams, given: Path | None) -> Path:
    """The dataset folder a command was given, else the prepared one (the CLI default)."""
    return given if given is not None else prepared_dataset_dir(data)


def prepare(params: Params, *, progress: bool = True) -> Path:
    """Import ``params.data`` into ``<data.prepared_dir>/<data.name>``; return that folder."""
    data = params.data
    if data.source == "synth":
        fmt, source = "csv", ensure_synth(data, progress=progress)
    else:
        if not data.path:
            raise ConfigError(f"params: data.path is required for data.source {data.source!r}")
        fmt, source = data.source, Path(data.path)
    out = import_dataset(
        fmt,
        source,
        prepared_dataset_dir(data),
        images_dir=data.images_dir,
        link=data.link_images,
        name=data.name,
        progress=progress,
    )
    add_feedback(out, params.feedback.export.dir)  # the users' relevant pairs (issue 29)
    return out
