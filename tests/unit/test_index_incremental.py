"""Incremental index updates (issue 14): `dove index add` encodes only new images (by content
hash), drops removed ones, equals a full rebuild of the new archive, refuses another model or
an index without hashes, and never leaves a half-written folder."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dove_model.config import Params
from dove_model.errors import DataFormatError
from dove_model.families.dove.inference import DoveEncoder
from dove_model.index import build_index_with, load_archive
from dove_model.index.incremental import RebuildNeededError, update_index_with
from dove_model.serving.search import Searcher
from dove_model.testing.deployment import SCENES, scene_image, synthetic_dataset, tiny_model_dir

REPO = Path(__file__).resolve().parents[2]
QUERIES = ("a blue lake surrounded by land", "yellow desert", "roads", "green forest")


class CountingEncoder:
    """The real encoder, counting the images and caption texts it is asked to encode."""

    def __init__(self, inner: DoveEncoder) -> None:
        self.inner = inner
        self.images = 0
        self.texts = 0

    def encode_images(self, images: list[Image.Image]) -> Any:
        self.images += len(images)
        return self.inner.encode_images(images)

    def encode_texts(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return self.inner.encode_texts(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("incremental")
    captions = [c for _, c in SCENES.values()]
    model = tiny_model_dir(root / "model", [*captions, *(f"there is {c}" for c in captions)])
    paths = {"root": root, "model": model}
    for per_scene in (3, 4, 5):  # scene_image(scene, i) is deterministic: 4 = 3 + 4 new
        paths[f"ds{per_scene}"] = synthetic_dataset(root / f"ds{per_scene}", per_scene=per_scene)
    encoder = DoveEncoder.from_dir(model)
    paths["index4"] = build_index_with(
        encoder, paths["ds4"], Params(), root / "index4", progress=False
    )
    return paths


def search_all(folder: Path, model: Path, probe: Path) -> tuple[list, np.ndarray]:
    """Top hits both ways: (image ids / captions in rank order, their scores)."""
    archive = load_archive(folder, Params().index)
    searcher = Searcher(DoveEncoder.from_dir(model), archive, candidates_k=archive.n_images)
    found, scores = [], []
    for query in QUERIES:
        hits = searcher.search_images(query, k=10)
        found.append([h.image_id for h in hits])
        scores += [h.score for h in hits]
    for name in ("lake_0", "desert_1"):
        with Image.open(probe / "images" / f"{name}.png") as img:
            caption_hits = searcher.search_texts(img.convert("RGB"), k=8)
        found.append([(h.caption, h.image_id) for h in caption_hits])
        scores += [h.score for h in caption_hits]
    return found, np.array(scores)


def assert_same_index(updated: Path, full: Path, model: Path, probe: Path) -> None:
    one, other = load_archive(updated, Params().index), load_archive(full, Params().index)
    assert other.fingerprint == one.fingerprint
    for column in ("image_id", "path", "sha256"):
        assert list(one.images[column]) == list(other.images[column])
    pd.testing.assert_frame_equal(one.captions, other.captions)
    for name in ("v_m", "v_mr", "r"):
        np.testing.assert_allclose(
            np.asarray(getattr(one.arrays, name), np.float32),
            np.asarray(getattr(other.arrays, name), np.float32),
            atol=2e-3,  # float16 storage; the encoder batches differently
        )
    found, scores = search_all(updated, model, probe)
    expected_found, expected_scores = search_all(full, model, probe)
    assert found == expected_found
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


def test_add_encodes_only_new_images_and_equals_a_full_rebuild(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    encoder = CountingEncoder(DoveEncoder.from_dir(setup["model"]))
    report = update_index_with(
        encoder, setup["index4"], setup["ds5"], Params(), tmp_path / "added", progress=False
    )
    assert (encoder.images, report.added, report.kept, report.removed) == (4, 4, 16, 0)
    assert encoder.texts == report.captions_encoded == 0  # same caption texts as before
    full = build_index_with(
        DoveEncoder.from_dir(setup["model"]),
        setup["ds5"],
        Params(),
        tmp_path / "full",
        progress=False,
    )
    assert_same_index(report.folder, full, setup["model"], setup["ds5"])
    meta = load_archive(report.folder, Params().index).meta
    assert meta["incremental"]["added"] == 4 and meta["images_root"] == str(setup["ds5"])


def test_removed_images_are_dropped_without_encoding(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    encoder = CountingEncoder(DoveEncoder.from_dir(setup["model"]))
    report = update_index_with(
        encoder, setup["index4"], setup["ds3"], Params(), tmp_path / "shrunk", progress=False
    )
    assert (encoder.images, encoder.texts) == (0, 0)
    assert (report.added, report.kept, report.removed) == (0, 12, 4)
    shrunk = load_archive(report.folder, Params().index)
    assert not shrunk.images["image_id"].str.endswith("_3").any()
    full = build_index_with(
        DoveEncoder.from_dir(setup["model"]),
        setup["ds3"],
        Params(),
        tmp_path / "full",
        progress=False,
    )
    assert_same_index(report.folder, full, setup["model"], setup["ds3"])


def test_new_caption_texts_and_changed_content_are_encoded(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    folder = shutil.copytree(setup["ds4"] / "images", tmp_path / "images")
    encoder = CountingEncoder(DoveEncoder.from_dir(setup["model"]))
    index = build_index_with(encoder, folder, Params(), tmp_path / "index", progress=False)
    scene_image("city", 7).save(folder / "lake_0.png")  # same name, other content
    (folder / "desert_1.png").unlink()
    before = encoder.images
    report = update_index_with(encoder, index, folder, Params(), progress=False)
    assert report.folder == index  # default: replaced in place
    assert (encoder.images - before, report.added, report.removed) == (1, 1, 2)
    assert load_archive(index, Params().index).n_images == 15
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index")]


def test_another_model_or_an_index_without_hashes_is_refused(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    other = tiny_model_dir(tmp_path / "other", ["a lake"], seed=1)
    with pytest.raises(RebuildNeededError, match=r"full rebuild .*dove index build"):
        update_index_with(
            DoveEncoder.from_dir(other), setup["index4"], setup["ds5"], Params(), tmp_path / "o"
        )
    old = shutil.copytree(setup["index4"], tmp_path / "old-format")
    images = pd.read_parquet(old / "images.parquet").drop(columns="sha256")
    images.to_parquet(old / "images.parquet", index=False)
    assert load_archive(old, Params().index).n_images == 16  # older folders still load
    with pytest.raises(RebuildNeededError, match=r"no per-image content hashes.*rebuild it once"):
        update_index_with(
            DoveEncoder.from_dir(setup["model"]), old, setup["ds5"], Params(), progress=False
        )
    assert not (tmp_path / "o").exists()


def test_a_failed_update_leaves_the_index_untouched(setup: dict[str, Path], tmp_path: Path) -> None:
    folder = shutil.copytree(setup["ds4"] / "images", tmp_path / "images")
    encoder = DoveEncoder.from_dir(setup["model"])
    index = build_index_with(encoder, folder, Params(), tmp_path / "index", progress=False)
    before = {p.name: p.read_bytes() for p in index.iterdir()}
    (folder / "zz_broken.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match=r"zz_broken\.png"):
        update_index_with(encoder, index, folder, Params(), progress=False)
    assert {p.name: p.read_bytes() for p in index.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "index"]


def test_cli_adds_and_refuses_another_model_with_exit_2(
    setup: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from dove_model.cli import main

    params = ["--params", str(REPO / "params.yaml")]

    def dove(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["dove", *args])
        try:
            main()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    index = shutil.copytree(setup["index4"], tmp_path / "index")
    add = ["index", "add", "--index", str(index), "-s", str(setup["ds5"]), *params]
    assert dove(*add, "-m", str(setup["model"])) == 0
    out = capsys.readouterr().out
    assert "added 4 images, removed 0, kept 16" in out and "20 images" in out
    other = tiny_model_dir(tmp_path / "other", ["a lake"], seed=1)
    assert dove(*add, "-m", str(other), "-o", str(tmp_path / "x")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "dove index build" in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_a_merged_sharded_index_can_be_updated(setup: dict[str, Path], tmp_path: Path) -> None:
    from dove_model.index.shards import ShardSpec, build_shard_with, merge_shards

    encoder = CountingEncoder(DoveEncoder.from_dir(setup["model"]))
    shards = [
        build_shard_with(
            encoder, setup["ds4"], Params(), tmp_path / f"s{i}", ShardSpec(i, 2), progress=False
        )
        for i in range(2)
    ]
    merged = merge_shards(shards, Params().index, tmp_path / "merged")
    before = encoder.images
    report = update_index_with(encoder, merged, setup["ds5"], Params(), progress=False)
    assert (encoder.images - before, report.added, report.kept) == (4, 4, 16)


def _without_last(dataset: Path, n_last: int, target: Path) -> Path:
    """``dataset`` minus the last ``n_last`` images of its manifest: the archive before they
    arrived (new images are appended to a manifest)."""
    import os

    from dove_model.data.manifest import read_manifest, write_manifest

    frame = read_manifest(dataset)
    ids = list(dict.fromkeys(frame["image_id"].astype(str)))
    shutil.copytree(dataset, target, copy_function=os.link)
    write_manifest(frame[frame["image_id"].astype(str).isin(set(ids[:-n_last]))], target)
    return target


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_images_appended_at_the_end_extend_the_old_vector_index(
    setup: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    """Nothing removed or reordered: the old FAISS indexes get only the new rows added (no
    rebuild), and the result searches like a full rebuild."""
    from dove_model.config import IndexParams

    index = IndexParams() if kind == "exact" else IndexParams(exact_max=1, approximate="hnsw")
    params = Params(index=index)
    encoder = DoveEncoder.from_dir(setup["model"])
    before = _without_last(setup["ds5"], 3, tmp_path / "before")
    old = build_index_with(encoder, before, params, tmp_path / "old", progress=False)
    report = update_index_with(encoder, old, setup["ds5"], params, tmp_path / "new", progress=False)
    assert (report.added, report.removed) == (3, 0)
    updated = load_archive(report.folder, params.index)
    assert updated.meta["incremental"]["appended"] == ["captions", "images"]
    assert updated.meta["image_index"] == kind and updated.image_index.ntotal == 20
    if kind == "exact":
        full = build_index_with(encoder, setup["ds5"], params, tmp_path / "full", progress=False)
        assert_same_index(report.folder, full, setup["model"], setup["ds5"])
    else:  # each new image is its own nearest neighbour in the grown HNSW graph
        new_rows = np.arange(17, 20)
        _, ids = updated.image_index.search(np.asarray(updated.arrays.v_m[new_rows], np.float32), 1)
        assert ids[:, 0].tolist() == new_rows.tolist()


def test_a_removed_image_forces_a_rebuild_of_the_vector_index(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    encoder = DoveEncoder.from_dir(setup["model"])
    report = update_index_with(
        encoder, setup["index4"], setup["ds3"], Params(), tmp_path / "fewer", progress=False
    )
    assert report.removed > 0
    assert load_archive(report.folder, Params().index).meta["incremental"]["appended"] == []
