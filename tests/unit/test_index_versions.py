"""Versioned index roots (pointer, atomic flip, pruning, legacy folders) and the service
runtime's live swap: a new version replaces the old (whose memory is then freed), a broken or
mismatched one is refused and remembered while the old one keeps serving."""

from __future__ import annotations

import gc
import json
import shutil
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dove_model.config import IndexParams, Params
from dove_model.errors import ConfigError
from dove_model.index.archive import load_archive, write_archive
from dove_model.index.encoder import ImageArrays
from dove_model.index.versions import (
    POINTER_FILE,
    current_index_dir,
    list_versions,
    new_version_id,
    prune_versions,
    read_pointer,
    set_current,
    version_dir,
)
from dove_model.testing.deployment import SCENES, synthetic_dataset, tiny_model_dir


def write_random(out: Path, n: int = 8, versioned: bool | None = None, keep: int = 2) -> Path:
    rng = np.random.default_rng(n)
    v = rng.standard_normal((n, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    images = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "path": ["x.png"] * n,
                           "label": pd.array([None] * n, dtype="string")})  # fmt: skip
    captions = pd.DataFrame({"caption": ["c"] * n, "image_row": np.arange(n)})
    return write_archive(
        out,
        arrays=ImageArrays(v_m=v, v_mr=v, r=v),
        images=images,
        captions=captions,
        caption_embeddings=v,
        params=IndexParams(keep_versions=keep),
        meta={"model_fingerprint": "a" * 64},
        versioned=versioned,
    )


def test_version_ids_sort_in_the_order_they_are_made() -> None:
    ids = [new_version_id() for _ in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_a_versioned_write_flips_the_pointer_and_loads_through_the_root(tmp_path: Path) -> None:
    root = write_random(tmp_path / "index", n=8, versioned=True)
    first = read_pointer(root)
    assert first is not None and list_versions(root) == [first]
    assert (root / POINTER_FILE).read_text().strip() == first
    assert not (root / "meta.json").exists()
    write_random(root, n=9)  # a versioned root stays versioned: no flag needed
    second = read_pointer(root)
    assert second != first and list_versions(root) == [first, second]
    archive = load_archive(root, IndexParams())
    assert archive.version == second and archive.n_images == 9
    assert current_index_dir(root) == (version_dir(root, second), second)
    set_current(root, first)  # a rollback
    assert load_archive(root, IndexParams()).n_images == 8
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]  # no temporary left


def test_pruning_keeps_the_current_and_keep_versions_older_ones(tmp_path: Path) -> None:
    root = tmp_path / "index"
    for n in range(4, 9):
        write_random(root, n=n, versioned=True, keep=2)
    versions = list_versions(root)
    assert len(versions) == 3 and read_pointer(root) == versions[-1]
    set_current(root, versions[0])  # the current one is never pruned, even the oldest
    assert prune_versions(root, keep=0) == versions[1:]
    assert list_versions(root) == [versions[0]]


def test_a_plain_folder_still_loads_and_has_no_version(tmp_path: Path) -> None:
    folder = write_random(tmp_path / "plain")
    assert (folder / "meta.json").is_file() and current_index_dir(folder) == (folder, None)
    assert load_archive(folder, IndexParams()).version is None
    write_random(folder, n=5, versioned=True)  # becomes versioned: CURRENT wins
    assert load_archive(folder, IndexParams()).n_images == 5


def test_a_bad_pointer_is_refused(tmp_path: Path) -> None:
    root = write_random(tmp_path / "index", versioned=True)
    (root / POINTER_FILE).write_text("../../etc\n")
    with pytest.raises(ConfigError, match="not an index version id"):
        current_index_dir(root)
    (root / POINTER_FILE).write_text("20990101T000000000000Z-abcdef\n")
    with pytest.raises(ConfigError, match="not found"):
        load_archive(root, IndexParams())
    with pytest.raises(ConfigError, match="no such index version"):
        set_current(root, "20990101T000000000000Z-abcdef")


# --------------------------------------------------------------------- live swaps
@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("swap")
    captions = [c for _, c in SCENES.values()]
    return {
        "small": synthetic_dataset(root / "small", per_scene=2, size=32),
        "grown": synthetic_dataset(root / "grown", per_scene=3, size=32),
        "model": tiny_model_dir(root / "model", [*captions, *(f"there is {c}" for c in captions)]),
        "other": tiny_model_dir(root / "other", captions, seed=1),
    }


def publish_copy(root: Path, source: Path, break_it: str) -> str:
    """A copy of ``source`` as a new version, broken as told, made current."""
    version = new_version_id()
    target = shutil.copytree(source, version_dir(root, version))
    if break_it == "truncated":
        data = (target / "images.faiss").read_bytes()
        (target / "images.faiss").write_bytes(data[: len(data) // 2])
    elif break_it == "meta":
        (target / "meta.json").write_text("{broken")
    elif break_it == "missing":
        (target / "v_m.npy").unlink()
    set_current(root, version)
    return version


def test_the_runtime_swaps_live_and_refuses_broken_versions(
    project: dict[str, Path], tmp_path: Path
) -> None:
    from dove_model.index.build import build_index
    from dove_model.serving.runtime import load_runtime
    from dove_model.serving.settings import ServingConfig

    root = tmp_path / "index"
    params = Params(index=IndexParams(keep_versions=10))
    build_index(project["model"], project["small"], params, root, progress=False, versioned=True)
    runtime = load_runtime(ServingConfig(params, "unused", project["model"], root, None))
    first = runtime.info.index_version
    assert first == read_pointer(root) and runtime.info.n_images == 8
    assert runtime.refresh() == "unchanged"
    held = runtime.index  # a request in flight holds the old index
    old = weakref.ref(held.archive)
    build_index(project["model"], project["grown"], params, root, progress=False)
    assert runtime.refresh() == "swapped"
    assert runtime.info.index_version == read_pointer(root) != first
    assert runtime.info.n_images == 12 and runtime.index.image_row(0, "lake_2") is not None
    assert held.searcher.search_images("a blue lake", 3)  # in-flight work finishes on the old
    del held
    gc.collect()
    assert old() is None, "the old archive is still referenced after the swap"
    serving = runtime.info.index_version
    for kind in ("truncated", "meta", "missing"):
        version = publish_copy(root, runtime.index.archive.folder, kind)
        assert runtime.refresh() == "refused"
        refused = runtime.info.index_refused
        assert refused is not None and refused.version == version
        assert runtime.refresh() == "known-refused"  # not loaded again every poll
        assert runtime.info.index_version == serving
        assert runtime.index.searcher.search_images("a blue lake", 3)
    build_index(project["other"], project["small"], params, root, progress=False)
    assert runtime.refresh() == "refused"
    assert "built by model" in runtime.info.index_refused.reason  # type: ignore[union-attr]
    set_current(root, serving)  # rolled back to what is served: nothing is refused any more
    assert runtime.refresh() == "unchanged" and runtime.info.index_refused is None


def test_thumbnails_follow_the_image_id_across_versions(
    project: dict[str, Path], tmp_path: Path
) -> None:
    from dove_model.index.build import build_index
    from dove_model.serving.runtime import load_runtime
    from dove_model.serving.settings import ServingConfig

    root = tmp_path / "index"
    params = Params()
    build_index(project["model"], project["grown"], params, root, progress=False, versioned=True)
    runtime = load_runtime(ServingConfig(params, "unused", project["model"], root, None))
    row = runtime.index.image_row(0, "lake_2")
    assert row is not None and runtime.thumbnail(row, "lake_2")
    build_index(project["model"], project["small"], params, root, progress=False)
    assert runtime.refresh() == "swapped"
    assert runtime.thumbnail(row, "lake_2") is None  # gone in the new version: a clean miss
    assert runtime.thumbnail(99, None) is None
    moved = runtime.index.image_row(row, "lake_1")
    assert moved is not None and runtime.thumbnail(row, "lake_1")
    meta = json.loads((current_index_dir(root)[0] / "meta.json").read_text())
    assert runtime.info.index_created == meta["created"]


def test_an_unreadable_pointer_is_a_clear_error_and_crashed_writers_are_cleaned(
    tmp_path: Path,
) -> None:
    import os
    import time

    from dove_model.errors import ConfigError
    from dove_model.index.versions import ABANDONED_AFTER_S, prune_versions, read_pointer

    (tmp_path / "CURRENT").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="unreadable index pointer"):
        read_pointer(tmp_path)
    (tmp_path / "CURRENT").write_text("v1\nv2\n")
    with pytest.raises(ConfigError, match="not an index version id"):
        read_pointer(tmp_path)
    (tmp_path / "CURRENT").unlink()
    versions = tmp_path / "versions"
    old, fresh = versions / ".v1.abc.tmp", versions / ".v2.def.tmp"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
    stale = time.time() - ABANDONED_AFTER_S - 60
    os.utime(old, (stale, stale))
    prune_versions(tmp_path, keep=2)
    assert not old.exists() and fresh.exists()  # a writer may still be using the fresh one
