"""FAISS inner-product indexes over L2-normalised embeddings (cosine = inner product).

Small archives get an exact flat index; above ``exact_max`` vectors an approximate one
(``index.approximate``) keeps a query in milliseconds at millions of images:

- ``hnsw`` and ``ivf`` hold the float32 vectors (D x 4 bytes an image, plus graph or ids);
- ``ivf_pq`` holds product-quantised codes (``pq_m`` bytes an image at 8 bits, plus an 8-byte
  id) and ``hnsw_sq8`` an HNSW graph over 8-bit scalar-quantised vectors (D bytes an image
  plus the graph). Both are lossy: their scores are approximate and ``reconstruct`` gives the
  decoded vectors back, not the encoded ones (``is_compressed``); recall against exact search
  is measured in docs/serving.md, "Compressed indexes". No exact re-scoring layer
  (``IndexRefineFlat``) is added: it keeps the float vectors in memory again, which is what
  the compressed kinds exist to avoid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from dove_model.config import IndexParams
from dove_model.errors import ConfigError

IndexKind = Literal["exact", "hnsw", "ivf", "ivf_pq", "hnsw_sq8"]
COMPRESSED_KINDS: frozenset[str] = frozenset({"ivf_pq", "hnsw_sq8"})
POINTS_PER_CENTROID = 39  # FAISS's k-means warns below 39 training points a centroid
SAMPLE_PER_CENTROID = 64  # what we train on when the archive has that many
SQ_TRAIN_SAMPLE = 100_000  # per-dimension min/max of the 8-bit scalar quantiser


def choose_kind(n_vectors: int, params: IndexParams) -> IndexKind:
    return "exact" if n_vectors <= params.exact_max else params.approximate


def is_compressed(index: faiss.Index) -> bool:
    """True for the lossy kinds: their stored vectors are codes, not the float32 embeddings."""
    return index_kind(index) in COMPRESSED_KINDS


def build_vector_index(
    vectors: np.ndarray, params: IndexParams, kind: IndexKind | None = None
) -> faiss.Index:
    """An inner-product index holding ``vectors`` (row i gets id i)."""
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = data.shape
    kind = kind or choose_kind(n, params)
    if kind == "exact":
        index: faiss.Index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = max(40, params.hnsw_ef_search)
    elif kind == "ivf":
        nlist = ivf_nlist(n, params)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(training_sample(data, nlist * SAMPLE_PER_CENTROID))
    elif kind == "ivf_pq":
        index = _trained_ivf_pq(data, params)
    elif kind == "hnsw_sq8":
        index = faiss.IndexHNSWSQ(
            dim, faiss.ScalarQuantizer.QT_8bit, params.hnsw_m, faiss.METRIC_INNER_PRODUCT
        )
        index.hnsw.efConstruction = max(40, params.hnsw_ef_search)
        index.train(training_sample(data, SQ_TRAIN_SAMPLE))
    else:  # pragma: no cover - guarded by the Literal in IndexParams
        raise ConfigError(f"index.approximate: unknown index kind {kind!r}")
    index.add(data)
    tune_for_search(index, params)
    return index


def ivf_nlist(n_vectors: int, params: IndexParams) -> int:
    """``ivf_nlist``, fewer lists when the archive is too small to train that many."""
    return max(1, min(params.ivf_nlist, n_vectors // POINTS_PER_CENTROID))


def pq_nbits(n_vectors: int, params: IndexParams) -> int:
    """``pq_nbits``, fewer bits (2**bits centroids a sub-quantiser) when the archive is too
    small to train 2**pq_nbits centroids on 39 points each (only just above ``exact_max``)."""
    affordable = int(np.floor(np.log2(max(n_vectors, 2) / POINTS_PER_CENTROID)))
    return max(1, min(params.pq_nbits, affordable))


def training_sample(data: np.ndarray, size: int) -> np.ndarray:
    """``size`` rows of ``data`` (all of them when it has fewer), the same ones every build."""
    n = len(data)
    if n <= size:
        return data
    rows = np.sort(np.random.default_rng(0).choice(n, size=size, replace=False))
    return np.ascontiguousarray(data[rows])


def _trained_ivf_pq(data: np.ndarray, params: IndexParams) -> faiss.Index:
    """IVF lists over PQ codes of the residuals; trained on enough rows for both the coarse
    centroids (64 a list) and every sub-quantiser's 2**nbits centroids (64 each)."""
    n, dim = data.shape
    if dim % params.pq_m:
        raise ConfigError(
            f"index.pq_m = {params.pq_m} does not divide the embedding dimension {dim}: "
            f"pick a divisor of {dim} (the code is pq_m bytes an image at 8 bits)"
        )
    nlist, nbits = ivf_nlist(n, params), pq_nbits(n, params)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, params.pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.train(training_sample(data, SAMPLE_PER_CENTROID * max(nlist, 2**nbits)))
    return index


def tune_for_search(index: faiss.Index, params: IndexParams) -> None:
    """Apply the query-time knobs (they are not stored in the index file)."""
    if isinstance(index, faiss.IndexHNSW):  # IndexHNSWFlat and IndexHNSWSQ
        index.hnsw.efSearch = params.hnsw_ef_search
    elif isinstance(index, faiss.IndexIVF):  # IndexIVFFlat and IndexIVFPQ
        index.nprobe = params.ivf_nprobe


def index_kind(index: faiss.Index) -> IndexKind:
    if isinstance(index, faiss.IndexHNSWSQ):
        return "hnsw_sq8"
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivf_pq"
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    return "exact"


def save_vector_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load_vector_index(path: Path, params: IndexParams, *, mmap: bool = False) -> faiss.Index:
    """Read into memory by default: FAISS's memory-mapped inverted lists made an IVF query
    ~12x slower (1.1 ms vs 0.09 ms at 100k x 256 on 2 cores); the global vectors are only
    D x 4 bytes an image, the big per-image re-rank arrays stay memory-mapped elsewhere."""
    if not path.is_file():
        raise ConfigError(f"{path}: vector index file not found")
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError:
        index = faiss.read_index(str(path))  # not every index type supports mmap
    tune_for_search(index, params)
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, ids) per query; callers drop ids of -1 (fewer than k found)."""
    k = max(1, min(k, index.ntotal))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, ids
