"""The FAISS archive index: global embeddings for candidate search, per-image re-rank arrays."""

from dove_model.index.archive import ArchiveIndex, IndexMismatchError, load_archive
from dove_model.index.build import build_index, build_index_with

__all__ = ["ArchiveIndex", "IndexMismatchError", "build_index", "build_index_with", "load_archive"]
