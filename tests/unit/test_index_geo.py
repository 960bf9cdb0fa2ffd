"""Geo metadata in the index (issue 28): ``geo.parquet`` beside the vectors when the dataset has
a ``chips.parquet``, one row per index image, kept through a sharded build and merge, ``dove
index add`` and a versioned write."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dove_model.config import Params
from dove_model.data.manifest import read_manifest
from dove_model.families.dove.inference import DoveEncoder
from dove_model.index import load_archive
from dove_model.index.build import build_index_with
from dove_model.index.geo_meta import GEO_FILE
from dove_model.index.incremental import update_index_with
from dove_model.index.shards import ShardSpec, build_shard_with, merge_shards
from dove_model.index.versions import is_versioned
from dove_model.testing.deployment import SCENES, synthetic_dataset, tiny_model_dir
from dove_model.testing.geo_index import write_chips


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("geo")
    captions = [c for _, c in SCENES.values()]
    model = tiny_model_dir(root / "model", [*captions, *(f"there is {c}" for c in captions)])
    dataset = synthetic_dataset(root / "ds", per_scene=3)
    write_chips(dataset)
    index = build_index_with(
        DoveEncoder.from_dir(model), dataset, Params(), root / "index", progress=False
    )
    return {"root": root, "model": model, "dataset": dataset, "index": index}


def test_build_writes_one_geo_row_per_image(setup: dict[str, Path]) -> None:
    archive = load_archive(setup["index"], Params().index)
    geo = archive.geo
    assert geo is not None and archive.meta["geo"] is True
    assert list(geo["image_id"]) == list(archive.images["image_id"])
    assert geo.crs is not None and geo.crs.to_epsg() == 4326
    first = geo.iloc[0]
    assert first["n_chips"] == 2  # two chips share image 0's bytes: footprint is the union
    assert first.geometry.bounds == (-1.0, 45.0, 1.0, 46.0)
    assert first["datetime"] == pd.Timestamp("2024-06-01T10:00:00Z")
    assert first["datetime_end"] == pd.Timestamp(f"2024-06-{99 % 28 + 1:02d}T10:00:00Z")
    assert (first["crs"], first["gsd"], first["item_id"]) == ("EPSG:32632", 10.0, "scene")
    last = geo.iloc[-1]  # in no chip row
    assert last["n_chips"] == 0 and last.geometry is None and pd.isna(last["datetime"])
    assert geo.iloc[3].geometry.bounds == (3.0, 45.0, 4.0, 46.0)


def test_no_chips_table_no_geo_file(setup: dict[str, Path], tmp_path: Path) -> None:
    plain = synthetic_dataset(tmp_path / "plain", per_scene=2)
    index = build_index_with(
        DoveEncoder.from_dir(setup["model"]), plain, Params(), tmp_path / "i", progress=False
    )
    archive = load_archive(index, Params().index)
    assert archive.geo is None and not (index / GEO_FILE).exists()
    assert archive.meta["geo"] is False


def _geo_frame(folder: Path) -> pd.DataFrame:
    geo = load_archive(folder, Params().index).geo
    assert geo is not None
    return pd.DataFrame(geo.assign(wkt=geo.geometry.to_wkt()).drop(columns="geometry"))


def test_merged_shards_keep_the_geo_rows(setup: dict[str, Path]) -> None:
    encoder = DoveEncoder.from_dir(setup["model"])
    root = setup["root"] / "sharded"
    shards = [
        build_shard_with(
            encoder, setup["dataset"], Params(), root / f"s{i}", ShardSpec(i, 3), progress=False
        )
        for i in range(3)
    ]
    merged = merge_shards(shards, Params().index, root / "merged")
    pd.testing.assert_frame_equal(_geo_frame(merged), _geo_frame(setup["index"]))


def test_incremental_add_and_versions_keep_the_geo_rows(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    dataset = synthetic_dataset(tmp_path / "ds", per_scene=3)
    chips = write_chips(dataset)
    small = tmp_path / "small"
    shutil.copytree(dataset, small)
    manifest = read_manifest(small)
    keep = set(list(dict.fromkeys(manifest["image_id"].astype(str)))[:-3])
    manifest[manifest["image_id"].astype(str).isin(keep)].to_parquet(
        small / "manifest.parquet", index=False
    )
    encoder = DoveEncoder.from_dir(setup["model"])
    root = tmp_path / "root"
    build_index_with(encoder, small, Params(), root, progress=False, versioned=True)
    assert is_versioned(root) and len(load_archive(root, Params().index).geo) == len(keep)
    update_index_with(encoder, root, dataset, Params(), progress=False)
    updated = load_archive(root, Params().index)
    assert updated.version is not None and updated.n_images == len(keep) + 3
    geo = updated.geo
    assert geo is not None and list(geo["image_id"]) == list(updated.images["image_id"])
    by_id = chips.drop_duplicates("image_id").set_index("image_id")
    for image_id, shape in zip(geo["image_id"][1:-1], geo.geometry[1:-1], strict=True):
        assert shape.equals(by_id.loc[image_id].geometry)
    assert np.isclose(geo.geometry.iloc[0].area, 2.0)
