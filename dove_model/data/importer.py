"""Import parsed records into the canonical layout (see :mod:`dove_model.data.manifest`).

Images are hard-linked where the file system allows it, otherwise copied; never re-encoded.
Each image is hashed (sha256) while it is placed, and its size read from the header only.
The whole folder is built in a temporary sibling and renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image
from tqdm import tqdm

from dove_model.atomic import atomic_dir
from dove_model.data.formats import RawRecords, parse
from dove_model.data.manifest import DATASET_INFO_FILE, IMAGES_DIR, coerce_manifest, write_manifest
from dove_model.errors import DataFormatError


@dataclass(frozen=True)
class PlacedImage:
    sha256: str | None
    width: int | None
    height: int | None


def _safe_relative(image: str, source: Path, line: object) -> PurePosixPath:
    rel = PurePosixPath(image.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise DataFormatError(f"{source}:{line}: image path {image!r} leaves the images folder")
    return rel


def place_image(src: Path, dst: Path, link: bool) -> PlacedImage:
    """Link or copy ``src`` to ``dst``; hash it and read its size. Missing file -> all None."""
    if not src.is_file():
        return PlacedImage(None, None, None)
    dst.parent.mkdir(parents=True, exist_ok=True)
    linked = False
    if link:
        try:
            os.link(src, dst)
            linked = True
        except OSError:
            linked = False
    if not linked:
        shutil.copyfile(src, dst)
    with dst.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    try:
        with Image.open(dst) as img:
            width, height = img.size
    except Exception:  # undecodable header: validation reports it
        width = height = None
    return PlacedImage(digest, width, height)


def build_manifest(
    records: RawRecords, out_dir: Path, *, link: bool = True, progress: bool = True
) -> pd.DataFrame:
    """Place every distinct image of ``records`` under ``out_dir/images``; return the manifest."""
    frame = records.frame
    first = frame.drop_duplicates("image")
    relatives = [
        _safe_relative(str(img), records.source, line)
        for img, line in zip(first["image"], first["source_line"], strict=True)
    ]

    def place(rel: PurePosixPath) -> PlacedImage:
        if records.images_root is None:
            return PlacedImage(None, None, None)
        return place_image(records.images_root / rel, out_dir / IMAGES_DIR / rel, link)

    with ThreadPoolExecutor(max_workers=4) as pool:
        placed = list(
            tqdm(
                pool.map(place, relatives),
                total=len(relatives),
                desc="import",
                unit="img",
                disable=not progress,
            )
        )
    by_image = dict(zip(first["image"], zip(relatives, placed, strict=True), strict=True))
    rel_of = {k: f"{IMAGES_DIR}/{rel}" for k, (rel, _) in by_image.items()}
    manifest = pd.DataFrame(
        {
            "image_id": frame["image_id"],
            "image_path": frame["image"].map(rel_of),
            "caption_id": range(len(frame)),
            "caption": frame["caption"],
            "split": frame["split"],
            "sha256": frame["image"].map(lambda k: by_image[k][1].sha256),
            "width": frame["image"].map(lambda k: by_image[k][1].width),
            "height": frame["image"].map(lambda k: by_image[k][1].height),
            "label": frame["label"],
            "source_line": frame["source_line"],
        }
    )
    _check_ids(manifest, records.source)
    return coerce_manifest(manifest)


def _check_ids(manifest: pd.DataFrame, source: Path) -> None:
    """One image id must name one image file (two files with one id would be merged)."""
    paths_per_id = manifest.groupby("image_id")["image_path"].nunique()
    clashes = paths_per_id[paths_per_id > 1]
    if not clashes.empty:
        shown = ", ".join(map(str, clashes.index[:5]))
        raise DataFormatError(f"{source}: image id(s) used for different files: {shown}")


def dataset_info(manifest: pd.DataFrame, records: RawRecords, name: str) -> dict[str, object]:
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
        manifest = build_manifest(records, tmp, link=link, progress=progress)
        write_manifest(manifest, tmp)
        info = dataset_info(manifest, records, name or out_dir.name)
        (tmp / DATASET_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out_dir
