"""Everything the service holds once started: model, archive index, searcher and info.

The archive and its searcher live in one ``LoadedIndex``, held by one attribute of the
runtime. A request reads that attribute once and works on what it got, so a live index swap
(``ServiceRuntime.refresh``, run every ``serve.index_poll_s`` by a daemon thread) is a single
assignment: requests in flight finish on the old index, new ones see the new one, and the
old archive (FAISS indexes, memory maps) is freed when the last request holding it ends.
A new version that fails to load or check is refused, remembered (not retried every poll;
an I/O error is retried) and reported on ``/info``; the old one keeps serving.

A version built by another model (a new champion: ``dove deploy`` imports it into the BentoML
store and indexes with it, recording its tag in the index meta) brings that model along: the
watcher loads it from the store beside the current one and swaps model and index together, so
the service moves to a new champion without a restart. A service pinned to a model directory
(``DOVE_MODEL_DIR``) never changes model: such an index is refused.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path

from PIL import Image

from dove_model.errors import ConfigError
from dove_model.index.archive import ArchiveIndex, check_archive, load_archive
from dove_model.index.encoder import family_of
from dove_model.index.versions import read_pointer, version_dir
from dove_model.model.encoding import Encoder
from dove_model.serving.coalesce import AsyncCoalescer
from dove_model.serving.metrics import IndexMetrics, StepMetrics
from dove_model.serving.model_store import model_dir_of
from dove_model.serving.schemas import IndexRefusal, ServiceInfo
from dove_model.serving.search import ImageHit, Searcher
from dove_model.serving.settings import ServingConfig

logger = logging.getLogger(__name__)
MAX_REMEMBERED_REFUSALS = 64


@dataclass(frozen=True)
class LoadedIndex:
    """One index version, checked against the model: what a request searches."""

    archive: ArchiveIndex
    searcher: Searcher
    info: ServiceInfo  # the service's info with this index's fields

    @property
    def version(self) -> str | None:
        return self.archive.version

    @property
    def encoder(self) -> Encoder:
        return self.searcher.encoder

    @cached_property
    def _row_of_id(self) -> dict[str, int]:
        rows: dict[str, int] = {}
        for row, image_id in enumerate(self.archive.images["image_id"].astype(str)):
            rows.setdefault(image_id, row)
        return rows

    def image_row(self, row: int, image_id: str | None = None) -> int | None:
        """The row of ``image_id`` (``row`` when it still holds it: hits name both), or of
        ``row`` when no id is given; None when this index has no such image."""
        valid = 0 <= row < self.archive.n_images
        if image_id is None:
            return row if valid else None
        if valid and str(self.archive.images["image_id"].iat[row]) == image_id:
            return row
        return self._row_of_id.get(image_id)


class ServiceRuntime:
    """Model, current index and the text-search coalescer; swaps the index live."""

    def __init__(
        self,
        config: ServingConfig,
        encoder: Encoder,
        base_info: ServiceInfo,
        metrics: StepMetrics | None = None,
        index_metrics: IndexMetrics | None = None,
    ) -> None:
        self.config = config
        self._first_encoder = encoder  # until the first index is open
        self.metrics = metrics
        self.index_metrics = index_metrics
        self._base_info = base_info
        self._lock = threading.Lock()
        self._refused: dict[str, IndexRefusal] = {}
        self._pointer_refusal: IndexRefusal | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._index = self.open_index(config.index_dir)
        self._first_encoder = None
        serve = config.params.serve
        # (query, k) -> hits; concurrent requests share one encode / FAISS / re-rank batch,
        # run on the index current when the batch starts
        self.text_search: AsyncCoalescer[tuple[str, int], list[ImageHit]] = AsyncCoalescer(
            self._search_batch,
            max_batch=serve.search_max_batch,
            max_running=serve.search_threads,
            thread_init=lambda: set_op_threads(serve.op_threads),
        )

    # ------------------------------------------------------------------ requests
    @property
    def index(self) -> LoadedIndex:
        """The current index: read it once per request and use what you got."""
        return self._index

    @property
    def encoder(self) -> Encoder:
        """The model of the current index (it changes with a new champion's index)."""
        return self._first_encoder or self._index.encoder

    @property
    def info(self) -> ServiceInfo:
        info = self._index.info
        refusal = self._pointer_refusal
        return info if refusal is None else info.model_copy(update={"index_refused": refusal})

    def _search_batch(self, requests: list[tuple[str, int]]) -> list[list[ImageHit]]:
        return self._index.searcher.search_images_batch(requests)

    def bind_thread(self) -> None:
        """Call at the start of each request: OpenMP's thread count is per calling thread,
        and BentoML runs requests on pool threads other than the one that loaded the model."""
        set_op_threads(self.config.params.serve.op_threads)

    def thumbnail(self, row: int, image_id: str | None = None) -> bytes | None:
        """A JPEG thumbnail of the image, or None when the current index lacks it."""
        index = self._index
        found = index.image_row(row, image_id)
        if found is None:
            return None
        path = index.archive.image_file(found)
        return _thumbnail(path, self.config.params.serve.thumbnail_px)

    # ------------------------------------------------------------------ index swaps
    def open_index(self, folder: Path, version: str | None = None) -> LoadedIndex:
        """Load and check an index folder (or a root's current version) for this model, or
        for the model its meta names when another model built it (see the module doc)."""
        archive = load_archive(folder, self.config.params.index)
        if version is not None:
            archive = replace(archive, version=version)
        check_archive(archive)
        encoder, base_info = self._model_for(archive)
        serve = self.config.params.serve
        searcher = Searcher(encoder, archive, serve.candidates_k, self.metrics)
        info = base_info.model_copy(
            update={
                "single_stage": searcher.single_stage,
                "n_images": archive.n_images,
                "n_captions": archive.n_captions,
                "image_index": str(archive.meta.get("image_index")),
                "caption_index": archive.meta.get("caption_index"),
                "index_version": archive.version,
                "index_created": archive.meta.get("created"),
            }
        )
        return LoadedIndex(archive, searcher, info)

    def _model_for(self, archive: ArchiveIndex) -> tuple[Encoder, ServiceInfo]:
        """The current model when it built ``archive``; else the model the index meta names
        (a new champion), loaded from the BentoML store. A mismatch the store cannot resolve
        is left to the searcher's check, which refuses the index."""
        current = self.encoder
        tag = (archive.meta.get("model") or {}).get("tag")
        pinned = self.config.model_dir is not None
        if archive.fingerprint == str(current.fingerprint) or pinned or not tag:
            return current, self._base_info
        with self._lock:  # one model load at a time (the watcher, a manual refresh)
            encoder, labels = load_encoder(replace(self.config, model_tag=str(tag)))
        logger.info("index %s: new model %s", archive.version, tag)
        return encoder, base_info_of(self.config, encoder, labels)

    def refresh(self) -> str:
        """Look at the index pointer once; swap to a new version or refuse it. Returns what
        happened: ``unchanged``, ``swapped``, ``refused`` or ``known-refused``."""
        root = self.config.index_dir
        try:
            version = read_pointer(root)
        except (ConfigError, OSError) as exc:
            logger.warning("index pointer of %s unreadable: %s", root, exc)
            return "unchanged"
        if version is None or version == self._index.version:
            self._pointer_refusal = None
            return "unchanged"
        if version in self._refused:
            self._pointer_refusal = self._refused[version]
            return "known-refused"
        try:
            loaded = self.open_index(version_dir(root, version), version)
        except Exception as exc:  # anything wrong with the new version: keep the old one
            # an I/O error may pass (a network file system hiccup): try it again next poll
            self._refuse(version, exc, remember=not isinstance(exc, OSError))
            return "refused"
        self._swap(loaded)
        return "swapped"

    def _swap(self, loaded: LoadedIndex) -> None:
        with self._lock:
            old, self._index = self._index, loaded
            self._base_info = loaded.info
            self._pointer_refusal = None
        logger.info(
            "index swapped: version %s (%d images, model %s) -> %s (%d images, model %s)",
            old.version,
            old.archive.n_images,
            old.info.model_version,
            loaded.version,
            loaded.archive.n_images,
            loaded.info.model_version,
        )
        if self.index_metrics:
            self.index_metrics.outcome("swapped")

    def _refuse(self, version: str, exc: BaseException, remember: bool = True) -> None:
        refusal = IndexRefusal(
            version=version,
            reason=f"{type(exc).__name__}: {exc}"[:1000],
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._lock:
            while remember and len(self._refused) >= MAX_REMEMBERED_REFUSALS:
                self._refused.pop(next(iter(self._refused)))
            if remember:
                self._refused[version] = refusal
            self._pointer_refusal = refusal
        logger.error(
            "index version %s refused, still serving %s: %s",
            version,
            self._index.version,
            refusal.reason,
        )
        if self.index_metrics:
            self.index_metrics.outcome("refused")

    def start_watching(self) -> None:
        """Poll the index pointer every ``serve.index_poll_s`` on a daemon thread."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="index-watch", daemon=True)
            self._watcher.start()

    def stop_watching(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(10)
            self._watcher = None

    def _watch(self) -> None:
        set_op_threads(self.config.params.serve.op_threads)
        while not self._stop.wait(self.config.params.serve.index_poll_s):
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any surprise
                logger.exception("index poll failed")


def load_encoder(config: ServingConfig) -> tuple[Encoder, dict[str, str]]:
    """The model from ``DOVE_MODEL_DIR`` if set, else from the BentoML store."""
    from dove_model.families.dispatch import load_encoder as encoder_of_dir

    if config.model_dir is not None:
        model_dir, labels = config.model_dir, {"tag": f"dir:{config.model_dir}"}
    else:
        model_dir, labels = model_dir_of(config.model_tag)
    return encoder_of_dir(model_dir, "cpu", config.params.serve.tower_precision), labels


def precision_of(encoder: Encoder) -> str:
    """``float32`` or ``bfloat16``: what a dual model's towers run in (DOVE: float32)."""
    dtype = getattr(encoder, "tower_dtype", None)
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def set_op_threads(threads: int) -> None:
    """One thread per torch/FAISS op: concurrent requests, not one request, use the cores
    (measured on 2 cores: a 10k search took 16 ms with 2 OpenMP threads, 0.5 ms with 1)."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def load_runtime(
    config: ServingConfig,
    metrics: StepMetrics | None = None,
    index_metrics: IndexMetrics | None = None,
) -> ServiceRuntime:
    """Load model and index; raises IndexMismatchError if another model built the index.
    Call ``start_watching`` on the result to pick up new index versions live."""
    set_op_threads(config.params.serve.op_threads)
    encoder, labels = load_encoder(config)
    base_info = base_info_of(config, encoder, labels)
    return ServiceRuntime(config, encoder, base_info, metrics, index_metrics)


def base_info_of(config: ServingConfig, encoder: Encoder, labels: dict[str, str]) -> ServiceInfo:
    """What /info says of a model (the index fields are filled in per index version)."""
    serve = config.params.serve
    tag = labels.get("tag", config.model_tag)
    return ServiceInfo(
        model_name=tag.split(":")[0],
        model_version=labels.get("model_version", tag.split(":")[-1]),
        alias=labels.get("alias", "none"),
        data_version=labels.get("data_version", "unknown"),
        model_fingerprint=str(encoder.fingerprint),
        family=family_of(encoder),
        tower_precision=precision_of(encoder),
        n_images=0,
        n_captions=0,
        image_index="none",
        caption_index=None,
        candidates_k=serve.candidates_k,
        max_k=serve.max_k,
    )


@lru_cache(maxsize=2048)
def _thumbnail(path: Path, size: int) -> bytes:
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85)
    return out.getvalue()
