"""A plain table of ``image,caption,split`` rows (optional ``label``, ``image_id``).

CSV with a header line, or JSON Lines (``.jsonl``) with the same keys. ``image`` is relative to
the file's folder (or ``images_dir``). ``source_line`` is the line in the file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from dove_model.data.formats.base import (
    RawRecords,
    image_id_of,
    normalise_split,
    records_frame,
)
from dove_model.errors import DataFormatError

REQUIRED = ("image", "caption", "split")


def _find_table(path: Path) -> Path:
    if path.is_file():
        return path
    for name in ("captions.csv", "captions.jsonl"):
        if (path / name).is_file():
            return path / name
    tables = sorted([*path.glob("*.csv"), *path.glob("*.jsonl")])
    if len(tables) == 1:
        return tables[0]
    raise DataFormatError(f"{path}: expected captions.csv (or exactly one .csv/.jsonl file)")


def _row(record: dict[str, Any], where: str, line_no: int) -> dict[str, Any]:
    missing = [k for k in REQUIRED if record.get(k) is None]
    if missing:
        raise DataFormatError(f"{where}: missing value(s) for {', '.join(missing)}")
    image = str(record["image"]).strip()
    if not image:
        raise DataFormatError(f"{where}: empty image path")
    return {
        "image_id": str(record.get("image_id") or image_id_of(image)),
        "image": image,
        "caption": str(record["caption"]),
        "split": normalise_split(record["split"], where),
        "label": (str(record["label"]) or None) if record.get("label") is not None else None,
        "source_line": line_no,
    }


def _csv_rows(file: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, strict=True)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise DataFormatError(f"{file}:1: missing column(s) {', '.join(missing)}")
            for record in reader:
                line_no = reader.line_num
                if None in record:  # more fields than the header
                    raise DataFormatError(f"{file}:{line_no}: more fields than the header")
                rows.append(_row(record, f"{file}:{line_no}", line_no))
    except csv.Error as exc:
        raise DataFormatError(f"{file}:{reader.line_num}: malformed CSV ({exc})") from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{file}: not UTF-8 text") from None
    return rows


def _jsonl_rows(file: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        lines = file.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise DataFormatError(f"{file}: not UTF-8 text") from None
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{file}:{line_no}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{file}:{line_no}: expected a JSON object")
        rows.append(_row(record, f"{file}:{line_no}", line_no))
    return rows


def parse_csv(path: Path, images_dir: Path | None) -> RawRecords:
    file = _find_table(path)
    rows = _jsonl_rows(file) if file.suffix.lower() == ".jsonl" else _csv_rows(file)
    frame = records_frame(rows, file)
    return RawRecords(frame, _images_root(file.parent, images_dir, frame["image"][0]), file, "csv")


def _images_root(folder: Path, images_dir: Path | None, first_image: str) -> Path:
    """``images_dir``, else ``<folder>/images`` when the paths resolve there, else ``folder``."""
    if images_dir is not None:
        if not images_dir.is_dir():
            raise DataFormatError(f"{images_dir}: images folder does not exist")
        return images_dir
    nested = folder / "images"
    if nested.is_dir() and (nested / first_image).exists() and not (folder / first_image).exists():
        return nested
    return folder
