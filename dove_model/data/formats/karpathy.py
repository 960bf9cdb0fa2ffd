"""Karpathy ``dataset.json``: ``{"images": [{"filename", "split", "sentences": [{"raw"}]}]}``.

``source_line`` is the 1-based position of the caption in the file (JSON has no useful line
numbers once parsed); ``restval`` counts as train.
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
    normalise_split,
    records_frame,
)
from dove_model.errors import DataFormatError


def _caption_text(sentence: Any, where: str) -> str:
    if isinstance(sentence, dict):
        if isinstance(sentence.get("raw"), str):
            return sentence["raw"]
        if isinstance(sentence.get("tokens"), list):
            return " ".join(map(str, sentence["tokens"]))
    raise DataFormatError(f"{where}: sentence has neither 'raw' text nor 'tokens'")


def parse_karpathy(path: Path, images_dir: Path | None) -> RawRecords:
    file = path / "dataset.json" if path.is_dir() else path
    if not file.is_file():
        raise DataFormatError(f"{file}: Karpathy dataset.json not found")
    data = load_json(file)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataFormatError(f"{file}: expected an object with an 'images' list (Karpathy format)")
    rows: list[dict[str, Any]] = []
    for entry_no, entry in enumerate(data["images"], start=1):
        where = f"{file}: images[{entry_no - 1}]"
        if not isinstance(entry, dict):
            raise DataFormatError(f"{where}: expected an object")
        missing = [k for k in ("filename", "split", "sentences") if k not in entry]
        if missing:
            raise DataFormatError(f"{where}: missing key(s) {', '.join(missing)}")
        image = "/".join(p for p in (entry.get("filepath"), entry["filename"]) if p)
        split = normalise_split(entry["split"], where)
        for sentence in entry["sentences"]:
            rows.append(
                {
                    "image_id": image_id_of(image),
                    "image": image,
                    "caption": _caption_text(sentence, where),
                    "split": split,
                    "label": label_from_name(image),
                    "source_line": len(rows) + 1,
                }
            )
    root = default_images_root(file.parent, images_dir)
    return RawRecords(records_frame(rows, file), root, file, "karpathy")
