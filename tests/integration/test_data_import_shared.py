"""Import the real benchmark annotations in ../shared/datasets (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dove_model.data.importer import import_dataset
from dove_model.data.manifest import load_split, read_manifest

pytestmark = [pytest.mark.integration, pytest.mark.shared_data]


def test_import_ucm_karpathy(ucm_dir: Path, tmp_path: Path) -> None:
    out = import_dataset("karpathy", ucm_dir, tmp_path / "ucm", progress=False)
    manifest = read_manifest(out)
    assert len(manifest) == 1890 * 5
    assert manifest["sha256"].notna().all()
    assert manifest.groupby("split")["image_id"].nunique().to_dict() == {"test": 210, "train": 1680}
    assert manifest["width"].between(240, 260).all()  # a few images are not 256 px wide
    test = load_split(out, "test")
    assert test.n_images == 210 and test.n_captions == 1050
    assert test.image_paths[0].read_bytes()[:2] == b"\xff\xd8"  # the JPEG itself, not re-encoded


@pytest.mark.parametrize(
    ("name", "n_images", "n_captions"), [("RSITMD", 4743, 23715), ("RSICD", 10921, 54605)]
)
def test_import_captions_only_amfmn(
    shared_datasets: Path, tmp_path: Path, name: str, n_images: int, n_captions: int
) -> None:
    source = shared_datasets / "captions-only" / name
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    out = import_dataset("amfmn", source, tmp_path / name, progress=False)
    manifest = read_manifest(out)
    assert len(manifest) == n_captions
    assert manifest["image_id"].nunique() == n_images
    assert manifest["sha256"].isna().all()  # captions only: validation reports the images
    assert manifest["label"].notna().any()  # from names like airport_1.jpg (not 00001.jpg)
    info = json.loads((out / "dataset.json").read_text())
    assert info["n_missing_images"] == n_images
    if name == "RSITMD":
        empty = manifest[manifest["caption"].str.strip() == ""]
        assert len(empty) == 20 and empty["image_id"].nunique() == 4
