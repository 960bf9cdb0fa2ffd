"""Import parsed records into the canonical layout (see :mod:`dove_model.data.manifest`).

Images are hard-linked where the file system allows it, otherwise copied; never re-encoded.
Each image is hashed (sha256) while it is placed, and its size read from the header only.
The whole folder is built in a temporary sibling and renamed into place at the end.

Image paths are normalised (``./a.png``, ``a.png`` and ``sub\\a.png``-style spellings of one
path are one image) and resolved: an image whose real path, symlinks followed, leaves the
images folder is refused like a ``..`` path. Several paths naming one file are imported as
written (one image per normalised path) and listed in ``dataset.json`` under
``duplicate_image_paths``, in the data gate's row style (``image a: lines 2, 3``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image
from tqdm import tqdm

from dove_model.atomic import atomic_dir
from dove_model.data.formats import RawRecords, parse
from dove_model.data.manifest import DATASET_INFO_FILE, IMAGES_DIR, coerce_manifest, write_manifest
from dove_model.errors import DataFormatError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlacedImage:
    sha256: str | None
    width: int | None
    height: int | None


def _safe_relative(image: str, source: Path, line: object) -> PurePosixPath:
    """The normalised relative path of ``image``: POSIX separators, no ``.`` or empty parts."""
    rel = PurePosixPath(image.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise DataFormatError(f"{source}:{line}: image path {image!r} leaves the images folder")
    return rel


def _resolve_inside(
    real_root: Path, rel: PurePosixPath, image: str, source: Path, line: object
) -> Path:
    """The real path of ``real_root/rel`` (symlinks followed); a DataFormatError when it is
    not inside ``real_root`` (a file or folder symlink pointing elsewhere)."""
    real = (real_root / rel).resolve()
    if not real.is_relative_to(real_root):
        raise DataFormatError(
            f"{source}:{line}: image path {image!r} resolves to {real}, outside the images "
            f"folder {real_root}"
        )
    return real


def _exclusive_copy(src: Path, dst: Path) -> None:
    with src.open("rb") as reader, dst.open("xb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)


def _hard_link(src: Path, dst: Path) -> bool:
    """True when ``dst`` is now a hard link of ``src``; False where linking is impossible
    (another file system, no hard links); FileExistsError when ``dst`` exists."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def place_image(src: Path, dst: Path, link: bool) -> PlacedImage:
    """Link or copy ``src`` to ``dst``; hash it and read its size. Missing file -> all None.
    ``dst`` must not exist yet (two images placed on one path is a DataFormatError)."""
    if not src.is_file():
        return PlacedImage(None, None, None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not (link and _hard_link(src, dst)):
            _exclusive_copy(src, dst)
    except FileExistsError:
        raise DataFormatError(
            f"{dst}: two image paths land on this one file (names differing only in case "
            "on a case-insensitive file system?)"
        ) from None
    with dst.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    try:
        with Image.open(dst) as img:
            width, height = img.size
    except Exception:  # undecodable header: validation reports it
        width = height = None
    return PlacedImage(digest, width, height)


def _normalised_paths(records: RawRecords) -> list[str]:
    """Each row's image path, normalised (and checked not to leave the images folder)."""
    cache: dict[str, str] = {}
    out = []
    for image, line in zip(records.frame["image"], records.frame["source_line"], strict=True):
        image = str(image)
        if image not in cache:
            cache[image] = str(_safe_relative(image, records.source, line))
        out.append(cache[image])
    return out


@dataclass(frozen=True)
class DuplicatePaths:
    """One file named by several differently written image paths, and the rows using them."""

    file: str  # as placed: images/<normalised path of the first spelling>
    paths: list[str]  # as written in the source, in order of first use
    lines: list[int]

    def describe(self) -> str:
        """The data gate's row style: ``images/a.png: lines 2, 3 ('a.png', './a.png')``."""
        lines = f"line{'s' if len(self.lines) > 1 else ''} {', '.join(map(str, self.lines))}"
        return f"{self.file}: {lines} ({', '.join(map(repr, self.paths))})"


def duplicate_paths(frame: pd.DataFrame, real: dict[str, Path | None]) -> list[DuplicatePaths]:
    """Differently written image paths that name one file: two spellings of one path, or a
    symlink inside the images folder beside its target."""
    written = frame.assign(real=frame["key"].map(lambda k: str(real[k] or k)))
    groups = []
    for _, rows in written.groupby("real", sort=False):
        paths = list(dict.fromkeys(rows["image"].astype(str)))
        if len(paths) > 1:
            lines = [int(n) for n in rows["source_line"].dropna()]
            groups.append(DuplicatePaths(f"{IMAGES_DIR}/{rows['key'].iloc[0]}", paths, lines))
    return groups


def build_manifest(
    records: RawRecords, out_dir: Path, *, link: bool = True, progress: bool = True
) -> tuple[pd.DataFrame, list[DuplicatePaths]]:
    """Place every distinct image of ``records`` under ``out_dir/images``; return the manifest
    and the image paths that name one file several ways (see :func:`duplicate_paths`)."""
    frame = records.frame.assign(key=_normalised_paths(records))
    first = frame.drop_duplicates("key")
    root = None if records.images_root is None else records.images_root.resolve()
    real: dict[str, Path | None] = {
        key: None
        if root is None
        else _resolve_inside(root, PurePosixPath(key), img, records.source, line)
        for key, img, line in zip(first["key"], first["image"], first["source_line"], strict=True)
    }

    def place(key: str) -> PlacedImage:
        src = real[key]
        if src is None:
            return PlacedImage(None, None, None)
        return place_image(src, out_dir / IMAGES_DIR / key, link)

    with ThreadPoolExecutor(max_workers=4) as pool:
        placed = list(
            tqdm(
                pool.map(place, first["key"]),
                total=len(first),
                desc="import",
                unit="img",
                disable=not progress,
            )
        )
    by_key = dict(zip(first["key"], placed, strict=True))
    manifest = pd.DataFrame(
        {
            "image_id": frame["image_id"],
            "image_path": IMAGES_DIR + "/" + frame["key"],
            "caption_id": range(len(frame)),
            "caption": frame["caption"],
            "split": frame["split"],
            "sha256": frame["key"].map(lambda k: by_key[k].sha256),
            "width": frame["key"].map(lambda k: by_key[k].width),
            "height": frame["key"].map(lambda k: by_key[k].height),
            "label": frame["label"],
            "source_line": frame["source_line"],
        }
    )
    _check_ids(manifest, records.source)
    duplicates = duplicate_paths(frame, real)
    if duplicates:
        shown = "; ".join(d.describe() for d in duplicates[:5])
        more = f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else ""
        log.warning("%s: files named by several image paths: %s%s", records.source, shown, more)
    return coerce_manifest(manifest), duplicates


def _check_ids(manifest: pd.DataFrame, source: Path) -> None:
    """One image id must name one image file (two files with one id would be merged)."""
    paths_per_id = manifest.groupby("image_id")["image_path"].nunique()
    clashes = paths_per_id[paths_per_id > 1]
    if not clashes.empty:
        shown = ", ".join(map(str, clashes.index[:5]))
        raise DataFormatError(f"{source}: image id(s) used for different files: {shown}")


def dataset_info(
    manifest: pd.DataFrame,
    records: RawRecords,
    name: str,
    duplicates: list[DuplicatePaths] | None = None,
) -> dict[str, object]:
    images = manifest.drop_duplicates("image_id")
    return {
        "name": name,
        "format": records.fmt,
        "source": str(records.source),
        "n_images": len(images),
        "n_captions": len(manifest),
        "n_missing_images": int(images["sha256"].isna().sum()),
        "splits": {
            str(s): {"images": int((images["split"] == s).sum()), "captions": int(n)}
            for s, n in manifest["split"].value_counts().sort_index().items()
        },
        "labels": sorted(str(v) for v in images["label"].dropna().unique()),
        "duplicate_image_paths": [asdict(d) for d in duplicates or []],
    }


def import_dataset(
    fmt: str,
    path: Path | str,
    out_dir: Path | str,
    *,
    images_dir: Path | str | None = None,
    link: bool = True,
    name: str | None = None,
    progress: bool = True,
) -> Path:
    """Parse ``path`` as ``fmt`` and write the canonical dataset folder ``out_dir``."""
    records = parse(fmt, path, images_dir)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / IMAGES_DIR).mkdir()
        manifest, duplicates = build_manifest(records, tmp, link=link, progress=progress)
        write_manifest(manifest, tmp)
        info = dataset_info(manifest, records, name or out_dir.name, duplicates)
        (tmp / DATASET_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out_dir
