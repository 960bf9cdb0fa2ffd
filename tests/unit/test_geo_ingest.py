"""`dove archive ingest` end to end: the dataset it writes (canonical manifest, GeoParquet
chips table), content-addressed chips, resuming after an interruption (a Ctrl-C and a killed
process) without rewriting a chip, one-line errors with exit 2, and `dove index build -s DIR`
indexing the result."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dove_model.data.manifest import DATASET_INFO_FILE, MANIFEST_FILE, read_manifest
from dove_model.errors import ConfigError
from dove_model.geo.chipping import TaskResult
from dove_model.geo.ingest import ingest
from dove_model.geo.outputs import CHIPS_FILE, read_chips
from dove_model.geo.settings import IngestParams
from dove_model.testing.geo_scenes import (
    UTM32N,
    north_up,
    rgb_scene,
    s2_scene,
    ucm_images,
    ucm_scene,
    utm_origin,
    write_catalog,
    write_cog,
)

DOVE = str(Path(sys.executable).with_name("dove"))
REPO = Path(__file__).resolve().parents[2]


def _dove(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    return subprocess.run([DOVE, *args], cwd=cwd, capture_output=True, text=True, env=env)


def _files(out: Path) -> dict[str, tuple[int, int]]:
    """Every chip file: (inode, mtime in ns)."""
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (out / "images").rglob("*")
        if p.is_file()
    }


def _table(out: Path) -> list[tuple[str, str]]:
    chips = read_chips(out)
    return list(zip(chips["chip_id"], chips["image_id"], strict=True))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ingest")
    for i in range(3):
        rgb_scene(root / "rgb" / f"scene{i}.tif", 160, seed=i, nodata_border=50 if i == 0 else 0)
    s2 = s2_scene(root / "s2" / "s2.tif", 128)
    write_catalog(root / "stac", [s2])
    return root


def test_the_dataset_is_canonical_and_chips_are_geoparquet(scenes: Path) -> None:
    out = scenes / "out"
    summary = ingest(scenes / "rgb", out, IngestParams(chip_size=64, workers=2), progress=False)
    assert (summary.n_scenes, summary.n_chips) == (3, 24)  # 9 a scene; 3 of the first skipped
    assert summary.skipped_nodata == 3 and summary.written == summary.n_images
    manifest = read_manifest(out)
    assert len(manifest) == summary.n_images and manifest["caption"].isna().all()
    assert set(manifest["split"]) == {"test"} and set(manifest["width"]) == {64}
    for row in manifest.itertuples():
        data = (out / row.image_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256 == row.image_id
        assert Path(row.image_path).name == f"{row.sha256}.png"  # content-addressed
    info = json.loads((out / DATASET_INFO_FILE).read_text())
    assert (info["n_images"], info["n_chips"], info["n_scenes"]) == (24, 24, 3)
    chips = read_chips(out)
    assert chips.crs.to_epsg() == 4326 and chips.geometry.name == "geometry"
    geo = json.loads(pq.read_schema(out / CHIPS_FILE).metadata[b"geo"])
    assert geo["primary_column"] == "geometry"
    assert geo["columns"]["geometry"]["encoding"] == "WKB"
    assert set(chips["crs"]) == {UTM32N} and set(chips["gsd"]) == {1.0}
    assert set(chips["datetime"]) == {"2024-05-01T10:30:00Z"}
    assert chips["chip_id"].is_unique and set(chips["image_id"]) == set(manifest["image_id"])
    again = read_chips(out)
    pd.testing.assert_frame_equal(pd.DataFrame(chips), pd.DataFrame(again))
    assert chips.geometry.geom_equals(again.geometry).all()


def test_identical_chips_share_one_content_addressed_file(tmp_path: Path) -> None:
    data = np.full((3, 64, 128), 90, dtype=np.uint8)  # two identical uniform chips
    left, top = utm_origin(9.0, 48.0)
    write_cog(tmp_path / "in" / "flat.tif", data, UTM32N, north_up(left, top, 2.0))
    summary = ingest(tmp_path / "in", tmp_path / "out", IngestParams(chip_size=64), progress=False)
    assert (summary.n_chips, summary.n_images, summary.written) == (2, 1, 1)
    assert len(read_manifest(tmp_path / "out")) == 1


def test_jpeg_chips_are_content_addressed_too(scenes: Path, tmp_path: Path) -> None:
    from PIL import Image

    params = IngestParams(chip_size=64, image_format="jpeg", bands=("B8", "B4", "B3"))
    summary = ingest(scenes / "s2", tmp_path / "out", params, progress=False)
    assert summary.n_chips == 4
    for row in read_manifest(tmp_path / "out").itertuples():
        path = tmp_path / "out" / row.image_path
        assert path.name == f"{row.sha256}.jpg"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 64))


def test_an_interrupted_run_resumes_without_rewriting_a_chip(scenes: Path) -> None:
    params = IngestParams(chip_size=32, workers=1, chips_per_task=10)  # 2 rows = 1 task
    out, fresh = scenes / "resumed", scenes / "fresh"

    def stop_after_three(result: TaskResult) -> None:
        stop_after_three.calls += 1  # type: ignore[attr-defined]
        if stop_after_three.calls == 3:  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    stop_after_three.calls = 0  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        ingest(scenes / "rgb", out, params, progress=False, on_task=stop_after_three)
    assert not (out / MANIFEST_FILE).exists()
    before = _files(out)
    assert before
    summary = ingest(scenes / "rgb", out, params, progress=False)
    assert summary.written + len(before) == summary.n_images
    after = _files(out)
    assert {k: after[k] for k in before} == before  # no chip written twice
    ingest(scenes / "rgb", fresh, params, progress=False)
    assert _table(out) == _table(fresh)
    again = ingest(scenes / "rgb", out, params, progress=False)
    assert (again.scenes_resumed, again.written) == (3, 0) and _table(out) == _table(fresh)


def test_a_killed_process_resumes(tmp_path: Path) -> None:
    for i in range(6):
        rgb_scene(tmp_path / "in" / f"s{i}.tif", 256, seed=10 + i)
    out = tmp_path / "out"
    args = [DOVE, "archive", "ingest", str(tmp_path / "in"), "--out", str(out)]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [*args, "--chip-size", "32", "--workers", "1"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list((out / ".ingest" / "scenes").glob("*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / MANIFEST_FILE).exists()  # killed before the end
    before = _files(out)
    summary = ingest(tmp_path / "in", out, IngestParams(chip_size=32, workers=1), progress=False)
    assert summary.scenes_resumed >= 1 and summary.n_chips == 6 * 64
    after = _files(out)
    assert {k: after[k] for k in before if not k.split("/")[-1].startswith(".")} == {
        k: v for k, v in before.items() if not k.split("/")[-1].startswith(".")
    }
    assert not [k for k in after if k.split("/")[-1].startswith(".")]  # temp files dropped


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path: Path) -> None:
    for i in range(6):
        rgb_scene(tmp_path / "in" / f"s{i}.tif", 256, seed=20 + i)
    out = tmp_path / "out"
    args = ["archive", "ingest", str(tmp_path / "in"), "--out", str(out), "--chip-size", "32"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [DOVE, *args, "--workers", "2"],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list((out / ".ingest").rglob("*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends the whole group on Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.rstrip().endswith(f"interrupted: run the same command again to resume into {out}")
    assert "Traceback" not in err and not (out / MANIFEST_FILE).exists()
    before = _files(out)
    resumed = _dove(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "6 scenes" in resumed.stdout and "384 chips" in resumed.stdout
    after = _files(out)
    assert {k: after[k] for k in before} == before


def test_other_settings_or_a_foreign_folder_are_refused(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest(scenes / "s2", out, IngestParams(chip_size=64, bands=("B4", "B3", "B2")), progress=False)
    with pytest.raises(ConfigError, match=r"ingested with other settings \(chip_size 64 -> 32"):
        ingest(scenes / "s2", out, IngestParams(chip_size=32, bands=("B4", "B3", "B2")))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty and not an archive ingest folder"):
        ingest(scenes / "s2", tmp_path / "foreign", IngestParams())


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from dove_model.cli import main

    monkeypatch.setattr(sys, "argv", ["dove", *argv])
    with pytest.raises(SystemExit) as stop:
        main()
    return int(stop.value.code or 0)


def _bad_inputs(root: Path) -> None:
    (root / "notgeo").mkdir()
    (root / "notgeo" / "fake.tif").write_text("not a tiff")
    data = np.ones((1, 32, 32), dtype=np.uint8)
    write_cog(root / "nocrs" / "plain.tif", data, None, None)
    write_cog(root / "degrees" / "wgs84.tif", data, "EPSG:4326", north_up(9.0, 48.0, 0.001))
    (root / "stac").mkdir()
    (root / "stac" / "catalog.json").write_text('{"type": "Catalog", "id": ')


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("nope", [], "nope: no such file or folder"),
        ("notgeo", [], "fake.tif: not a readable GeoTIFF"),
        ("nocrs", [], "plain.tif: no CRS (the file is not georeferenced)"),
        ("s2", ["--bands", "B9,B3,B2"], "s2.tif: no band 'B9'"),
        ("s2", ["--bands", "B4,B3"], "give 1 band (grey) or 3"),
        ("s2", [], "4 bands (asset 'image' bands: 1=B2, 2=B3, 3=B4, 4=B8) and none named"),
        ("s2", ["--overlap", "256"], "overlap 256 must be smaller than chip_size"),
        ("degrees", ["--gsd", "10"], "--gsd (metres) needs a projected CRS"),
        ("stac", [], "catalog.json: not a readable STAC catalog"),
        ("http://127.0.0.1:9/", [], "http://127.0.0.1:9/: STAC source not reachable"),
        ("s2", ["--bbox", "1,2,3"], "--bbox '1,2,3': four numbers"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    scenes: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: str,
    options: list[str],
    message: str,
) -> None:
    _bad_inputs(tmp_path)
    if source == "s2":
        (tmp_path / "s2").symlink_to(scenes / "s2")
    given = source if source.startswith("http") else str(tmp_path / source)
    out = tmp_path / "out"
    code = _main(["archive", "ingest", given, "--out", str(out), *options], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert not out.exists()


def test_the_real_command_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    _bad_inputs(tmp_path)
    result = _dove("archive", "ingest", str(tmp_path / "nocrs"), "--out", "out", cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert result.stderr == (
        f"error: {tmp_path / 'nocrs' / 'plain.tif'}: no CRS (the file is not georeferenced)\n"
    )


@pytest.mark.slow
def test_dove_index_build_indexes_the_ingested_folder(scenes: Path, tmp_path: Path) -> None:
    import torch

    from dove_model.config import Params
    from dove_model.index import load_archive
    from dove_model.testing.deployment import tiny_model_dir

    torch.set_num_threads(1)
    out = tmp_path / "chips"
    cli = _dove(
        "archive",
        "ingest",
        str(scenes / "stac"),
        "--out",
        str(out),
        "--chip-size",
        "64",
        "--workers",
        "2",
        cwd=tmp_path,
    )
    assert cli.returncode == 0, cli.stderr
    assert "ingested 1 scenes" in cli.stdout and "4 chips" in cli.stdout
    model = tiny_model_dir(tmp_path / "model", ["a scene from above"])
    (tmp_path / "params.yaml").write_text("{}\n")
    built = _dove(
        "index",
        "build",
        "-m",
        str(model),
        "-s",
        str(out),
        "-o",
        str(tmp_path / "idx"),
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    assert "4 images" in built.stdout and "0 captions" in built.stdout
    archive = load_archive(tmp_path / "idx", Params().index)
    assert sorted(archive.images["image_id"]) == sorted(read_manifest(out)["image_id"])


@pytest.mark.shared_data
def test_ucm_images_come_back_pixel_for_pixel(tmp_path: Path) -> None:
    from PIL import Image

    images = ucm_images(4)
    if images is None:
        pytest.skip("../shared/datasets/ucm-captions is absent")
    ucm_scene(tmp_path / "in" / "ucm.tif", images)
    summary = ingest(tmp_path / "in", tmp_path / "out", IngestParams(chip_size=256), progress=False)
    assert summary.n_chips == 4
    chips = read_chips(tmp_path / "out").sort_values(["row", "col"])
    for chip, image in zip(chips.itertuples(), images, strict=True):
        expected = np.asarray(Image.open(image).convert("RGB").resize((256, 256)))
        got = np.asarray(Image.open(tmp_path / "out" / chip.image_path))
        np.testing.assert_array_equal(got, expected)
    assert chips["gsd"].tolist() == pytest.approx([0.3] * 4)
    half = ingest(
        tmp_path / "in", tmp_path / "half", IngestParams(chip_size=256, gsd=0.6), progress=False
    )
    assert half.n_chips == 1
