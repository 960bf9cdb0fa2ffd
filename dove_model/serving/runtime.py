"""Everything the service holds once started: model, archive index, searcher and info."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from dove_model.index.archive import ArchiveIndex, load_archive
from dove_model.index.encoder import Encoder, family_of
from dove_model.serving.coalesce import AsyncCoalescer
from dove_model.serving.metrics import StepMetrics
from dove_model.serving.model_store import model_dir_of
from dove_model.serving.schemas import ServiceInfo
from dove_model.serving.search import ImageHit, Searcher
from dove_model.serving.settings import ServingConfig


@dataclass(frozen=True)
class ServiceRuntime:
    config: ServingConfig
    encoder: Encoder
    archive: ArchiveIndex
    searcher: Searcher
    info: ServiceInfo
    # (query, k) -> hits; concurrent requests share one encode / FAISS / re-rank batch
    text_search: AsyncCoalescer[tuple[str, int], list[ImageHit]]

    def bind_thread(self) -> None:
        """Call at the start of each request: OpenMP's thread count is per calling thread,
        and BentoML runs requests on pool threads other than the one that loaded the model."""
        set_op_threads(self.config.params.serve.op_threads)

    def thumbnail(self, row: int) -> bytes:
        return _thumbnail(self.archive.image_file(row), self.config.params.serve.thumbnail_px)


def load_encoder(config: ServingConfig) -> tuple[Encoder, dict[str, str]]:
    """The model from ``DOVE_MODEL_DIR`` if set, else from the BentoML store."""
    from dove_model.encoders import load_encoder as encoder_of_dir

    if config.model_dir is not None:
        model_dir, labels = config.model_dir, {"tag": f"dir:{config.model_dir}"}
    else:
        model_dir, labels = model_dir_of(config.model_tag)
    return encoder_of_dir(model_dir, device="cpu"), labels


def set_op_threads(threads: int) -> None:
    """One thread per torch/FAISS op: concurrent requests, not one request, use the cores
    (measured on 2 cores: a 10k search took 16 ms with 2 OpenMP threads, 0.5 ms with 1)."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def load_runtime(config: ServingConfig, metrics: StepMetrics | None = None) -> ServiceRuntime:
    """Load model and index; raises IndexMismatchError if another model built the index."""
    set_op_threads(config.params.serve.op_threads)
    encoder, labels = load_encoder(config)
    archive = load_archive(config.index_dir, config.params.index)
    serve = config.params.serve
    searcher = Searcher(encoder, archive, serve.candidates_k, metrics)
    tag = labels.get("tag", config.model_tag)
    info = ServiceInfo(
        model_name=tag.split(":")[0],
        model_version=labels.get("model_version", tag.split(":")[-1]),
        alias=labels.get("alias", "none"),
        data_version=labels.get("data_version", "unknown"),
        model_fingerprint=str(encoder.fingerprint),
        family=family_of(encoder),
        single_stage=searcher.single_stage,
        n_images=archive.n_images,
        n_captions=archive.n_captions,
        image_index=str(archive.meta.get("image_index")),
        caption_index=archive.meta.get("caption_index"),
        candidates_k=serve.candidates_k,
        max_k=serve.max_k,
    )
    text_search: AsyncCoalescer[tuple[str, int], list[ImageHit]] = AsyncCoalescer(
        searcher.search_images_batch,
        max_batch=serve.search_max_batch,
        max_running=serve.search_threads,
        thread_init=lambda: set_op_threads(serve.op_threads),
    )
    return ServiceRuntime(config, encoder, archive, searcher, info, text_search)


@lru_cache(maxsize=2048)
def _thumbnail(path: Path, size: int) -> bytes:
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85)
    return out.getvalue()
