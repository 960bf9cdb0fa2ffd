"""AMFMN "precomp" text files: ``<split>_caps.txt`` + ``<split>_filename.txt``.

Two layouts exist in the wild and both are read: one filename per image (its captions are the
next ``k`` caption lines, ``k = captions / filenames``) and one filename per caption.
``source_line`` is the line in ``<split>_caps.txt``. Images are usually kept elsewhere: pass
``images_dir``; without it every image is reported missing by validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dove_model.data.formats.base import (
    SPLIT_ALIASES,
    RawRecords,
    image_id_of,
    label_from_name,
    read_lines,
    records_frame,
)
from dove_model.data.manifest import SPLITS
from dove_model.errors import DataFormatError


def _precomp_folder(path: Path) -> Path:
    if path.is_file():
        return path.parent
    if any(path.glob("*_caps.txt")):
        return path
    nested = sorted(p for p in path.glob("*precomp") if p.is_dir())
    if nested:
        return nested[0]
    raise DataFormatError(f"{path}: no <split>_caps.txt files found (AMFMN precomp format)")


def _split_rows(caps_file: Path, names_file: Path, split: str) -> list[dict[str, Any]]:
    if not names_file.is_file():
        raise DataFormatError(f"{names_file}: missing (needed with {caps_file.name})")
    captions, names = read_lines(caps_file), read_lines(names_file)
    if not names:
        raise DataFormatError(f"{names_file}: empty file")
    if len(names) == len(captions):
        per_caption = names
    elif len(captions) % len(names) == 0:
        k = len(captions) // len(names)
        per_caption = [name for name in names for _ in range(k)]
    else:
        raise DataFormatError(
            f"{caps_file}: {len(captions)} captions do not fit the {len(names)} file names in "
            f"{names_file.name} (neither one per caption nor a fixed number per image)"
        )
    for line_no, name in enumerate(names, start=1):
        if not name.strip():
            raise DataFormatError(f"{names_file}:{line_no}: empty file name")
    return [
        {
            "image_id": image_id_of(name.strip()),
            "image": name.strip(),
            "caption": caption,
            "split": split,
            "label": label_from_name(name.strip()),
            "source_line": line_no,
        }
        for line_no, (caption, name) in enumerate(zip(captions, per_caption, strict=True), start=1)
    ]


def parse_amfmn(path: Path, images_dir: Path | None) -> RawRecords:
    folder = _precomp_folder(path)
    rows: list[dict[str, Any]] = []
    found = []
    for caps_file in folder.glob("*_caps.txt"):
        prefix = caps_file.name[: -len("_caps.txt")]
        split = SPLIT_ALIASES.get(prefix.lower())
        if split is not None:  # other *_caps.txt files (e.g. a vocabulary dump) are skipped
            found.append((SPLITS.index(split), prefix, caps_file, split))
    for _, prefix, caps_file, split in sorted(found):
        rows.extend(_split_rows(caps_file, folder / f"{prefix}_filename.txt", split))
    if images_dir is not None and not images_dir.is_dir():
        raise DataFormatError(f"{images_dir}: images folder does not exist")
    root = images_dir or (folder / "images" if (folder / "images").is_dir() else None)
    return RawRecords(records_frame(rows, folder), root, folder, "amfmn")
