"""What every format parser returns, and helpers they share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dove_model.errors import DataFormatError

# one row per caption; ``image`` is relative to ``images_root`` (POSIX separators)
RECORD_COLUMNS = ("image_id", "image", "caption", "split", "label", "source_line")
SPLIT_ALIASES = {"train": "train", "restval": "train", "val": "val", "valid": "val", "test": "test"}
_LABELLED_NAME = re.compile(r"^([A-Za-z]+(?:[_-][A-Za-z]+)*)_\d+$")


@dataclass(frozen=True)
class RawRecords:
    """Captions as parsed from a source, before images are copied and hashed."""

    frame: pd.DataFrame  # columns RECORD_COLUMNS
    images_root: Path | None  # where ``image`` paths resolve; None = images not available
    source: Path  # the file or folder that was parsed (for messages)
    fmt: str


def records_frame(rows: list[dict[str, Any]], source: Path) -> pd.DataFrame:
    if not rows:
        raise DataFormatError(f"{source}: no captions found")
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    frame["caption"] = frame["caption"].fillna("").astype("string")
    frame["label"] = frame["label"].astype("string")
    frame["source_line"] = frame["source_line"].astype("Int64")
    return frame


def image_id_of(image: str) -> str:
    """The id of an image: its relative path without the extension."""
    return str(Path(image).with_suffix("")).replace("\\", "/")


def label_from_name(image: str) -> str | None:
    """``bridge_942.tif`` -> ``bridge``: the class many RS datasets encode in file names."""
    match = _LABELLED_NAME.match(Path(image).stem)
    return match.group(1).lower() if match else None


def normalise_split(value: Any, where: str) -> str:
    split = SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        raise DataFormatError(f"{where}: unknown split {value!r} (expected train, val or test)")
    return split


def load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def read_lines(path: Path) -> list[str]:
    """Lines of a text file, keeping empty ones (their position is the data)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not UTF-8 text") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def default_images_root(folder: Path, images_dir: Path | None) -> Path | None:
    if images_dir is not None:
        if not images_dir.is_dir():
            raise DataFormatError(f"{images_dir}: images folder does not exist")
        return images_dir
    candidate = folder / "images"
    return candidate if candidate.is_dir() else folder
