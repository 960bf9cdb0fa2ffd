"""PIR-style json files: ``train.json`` (one entry per caption, with ``label_name``) and
``val.json`` / ``test.json`` (one entry per image, ``caption`` a list).

``path`` is a folder holding ``*train*.json`` / ``*val*.json`` / ``*test*.json`` or one such
file. ``source_line`` is the 1-based caption position within its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dove_model.data.formats.base import (
    RawRecords,
    default_images_root,
    image_id_of,
    label_from_name,
    load_json,
    records_frame,
)
from dove_model.errors import DataFormatError

_SPLIT_WORDS = (("train", "train"), ("val", "val"), ("test", "test"))


def _split_of(file: Path) -> str:
    for word, split in _SPLIT_WORDS:
        if word in file.stem.lower():
            return split
    raise DataFormatError(f"{file}: cannot tell the split from the name (train/val/test)")


def _file_rows(file: Path) -> list[dict[str, Any]]:
    data = load_json(file)
    if not isinstance(data, list):
        raise DataFormatError(f"{file}: expected a list of entries (PIR format)")
    split = _split_of(file)
    rows: list[dict[str, Any]] = []
    for index, entry in enumerate(data):
        where = f"{file}: entry {index}"
        if not isinstance(entry, dict) or "image" not in entry or "caption" not in entry:
            raise DataFormatError(f"{where}: expected an object with 'image' and 'caption'")
        captions = entry["caption"] if isinstance(entry["caption"], list) else [entry["caption"]]
        image = str(entry["image"])
        label = entry.get("label_name") or label_from_name(image)
        for caption in captions:
            if caption is not None and not isinstance(caption, str):
                raise DataFormatError(f"{where}: caption is not text")
            rows.append(
                {
                    "image_id": image_id_of(image),
                    "image": image,
                    "caption": caption or "",
                    "split": split,
                    "label": label,
                    "source_line": len(rows) + 1,
                }
            )
    return rows


def parse_pir(path: Path, images_dir: Path | None) -> RawRecords:
    files = [path] if path.is_file() else sorted(path.glob("*.json"))
    files = [f for f in files if any(w in f.stem.lower() for w, _ in _SPLIT_WORDS)]
    if not files:
        raise DataFormatError(f"{path}: no train/val/test json files found (PIR format)")
    rows = [row for file in files for row in _file_rows(file)]
    folder = path if path.is_dir() else path.parent
    return RawRecords(
        records_frame(rows, path), default_images_root(folder, images_dir), path, "pir"
    )
