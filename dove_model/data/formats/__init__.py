"""Parsers for the caption formats a user brings; each returns :class:`RawRecords`.

A parser only reads annotation files. Copying images and computing hashes is the importer's
job (:mod:`dove_model.data.importer`), so every format shares one canonical layout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dove_model.data.formats.amfmn import parse_amfmn
from dove_model.data.formats.base import RawRecords
from dove_model.data.formats.csv_rows import parse_csv
from dove_model.data.formats.karpathy import parse_karpathy
from dove_model.data.formats.pir import parse_pir
from dove_model.errors import DataFormatError

Parser = Callable[[Path, Path | None], RawRecords]

PARSERS: dict[str, Parser] = {
    "karpathy": parse_karpathy,
    "amfmn": parse_amfmn,
    "pir": parse_pir,
    "csv": parse_csv,
}
FORMATS = tuple(PARSERS)


def parse(fmt: str, path: Path | str, images_dir: Path | str | None = None) -> RawRecords:
    """Parse ``path`` in format ``fmt``; errors name the file (and line)."""
    if fmt not in PARSERS:
        raise DataFormatError(
            f"{path}: unknown format {fmt!r} (choose one of {', '.join(FORMATS)})"
        )
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: no such file or folder")
    return PARSERS[fmt](path, Path(images_dir) if images_dir is not None else None)


__all__ = ["FORMATS", "PARSERS", "RawRecords", "parse"]
