"""The Great Expectations data gate on good and on deliberately broken synthetic data."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dove_model.config import SynthParams, parse_params
from dove_model.data.importer import import_dataset
from dove_model.data.synth import CAPTIONS_FILE, render_synth
from dove_model.quality.validate import ValidationResult, validate

PARAMS = parse_params({"validate": {"workers": 1}})


@pytest.fixture(scope="module")
def synth_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gate") / "synth"
    params = SynthParams(n_images=28, seed=5, val_fraction=0.25, test_fraction=0.25)
    render_synth(out, params, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def good(synth_source: Path, tmp_path_factory: pytest.TempPathFactory) -> ValidationResult:
    root = tmp_path_factory.mktemp("good")
    dataset = import_dataset("csv", synth_source, root / "dataset", progress=False)
    return validate(dataset, PARAMS, root / "report", progress=False)


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / CAPTIONS_FILE).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _first(rows: list[dict[str, str]], split: str, skip: int = 0) -> str:
    images = list(dict.fromkeys(r["image"] for r in rows if r["split"] == split))
    return images[skip]


@pytest.fixture(scope="module")
def broken(synth_source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One dataset with every defect the gate must catch, each in a different image."""
    root = tmp_path_factory.mktemp("broken")
    source = root / "synth"
    shutil.copytree(synth_source, source)
    rows = _rows(source)
    images = source / "images"
    defects = {
        "truncated": _first(rows, "train", 0),
        "missing": _first(rows, "train", 1),
        "blank": _first(rows, "train", 2),
        "leak_train": _first(rows, "train", 3),
        "leak_test": _first(rows, "test", 0),
        "empty_caption": _first(rows, "val", 0),
        "tampered": _first(rows, "train", 4),
    }
    data = (images / defects["truncated"]).read_bytes()
    (images / defects["truncated"]).write_bytes(data[: len(data) // 2])
    (images / defects["missing"]).unlink()
    Image.new("RGB", (256, 256), (120, 120, 120)).save(images / defects["blank"], quality=92)
    shutil.copyfile(images / defects["leak_train"], images / defects["leak_test"])
    empty_lines = []
    for line_no, row in enumerate(rows, start=2):
        if row["image"] == defects["empty_caption"] and len(empty_lines) < 2:
            row["caption"] = "   "
            empty_lines.append(line_no)
    with (source / CAPTIONS_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    dataset = import_dataset("csv", source, root / "dataset", progress=False)
    # changed after prepare: a valid image, but not the bytes the manifest recorded
    tampered = dataset / "images" / defects["tampered"]
    tampered.unlink()  # a hard link to the source: replace, do not write through
    shutil.copyfile(images / _first(rows, "train", 5), tampered)
    result = validate(dataset, PARAMS, root / "report", progress=False)
    ids = {k: Path(v).stem for k, v in defects.items()}
    return {"result": result, "ids": ids, "empty_lines": empty_lines, "dataset": dataset}


def _check(result: ValidationResult, name: str):
    (check,) = [c for c in result.checks if c.name == name]
    return check


def test_good_data_passes_and_writes_reports(good: ValidationResult) -> None:
    assert good.passed, good.failure_message()
    summary = json.loads(good.summary_file.read_text())
    assert summary["passed"] is True
    assert summary["counts"]["images"] == 28
    assert {c["severity"] for c in summary["checks"]} == {"critical", "warning"}
    assert good.data_docs_index.is_file()
    html = list((good.report_dir / "data_docs" / "validations").rglob("*.html"))
    assert len(html) == 3  # one validation page per suite
    # templated synthetic captions repeat across splits: reported as a warning with counts
    shared = _check(good, "caption_not_shared_with_train")
    assert shared.severity == "warning"


def test_catches_truncated_jpeg(broken: dict) -> None:
    check = _check(broken["result"], "image_decodes")
    assert not check.success and check.severity == "critical"
    assert check.offenders == [f"image {broken['ids']['truncated']}"]


def test_catches_missing_image_file(broken: dict) -> None:
    check = _check(broken["result"], "image_file_exists")
    assert check.offenders == [f"image {broken['ids']['missing']}"]


def test_catches_blank_image(broken: dict) -> None:
    check = _check(broken["result"], "image_not_blank")
    assert check.offenders == [f"image {broken['ids']['blank']}"]


def test_catches_image_duplicated_across_train_and_test(broken: dict) -> None:
    check = _check(broken["result"], "image_in_one_split")
    ids = broken["ids"]
    assert sorted(check.offenders) == sorted(
        [f"image {ids['leak_train']}", f"image {ids['leak_test']}"]
    )


def test_catches_image_changed_after_prepare(broken: dict) -> None:
    check = _check(broken["result"], "image_bytes_match_manifest")
    assert check.offenders == [f"image {broken['ids']['tampered']}"]


def test_catches_empty_captions_by_line(broken: dict) -> None:
    check = _check(broken["result"], "caption_not_blank")
    image = broken["ids"]["empty_caption"]
    assert check.offenders == [f"line {n} (image {image})" for n in broken["empty_lines"]]


def test_failure_message_names_offending_rows(broken: dict) -> None:
    result = broken["result"]
    assert not result.passed
    message = result.failure_message()
    assert "\n" not in message
    for key in ("truncated", "missing", "blank", "leak_test", "empty_caption"):
        assert broken["ids"][key] in message, key
    summary = json.loads(result.summary_file.read_text())
    failed = {c["name"] for c in summary["checks"] if not c["success"]}
    assert {"image_decodes", "image_file_exists", "image_not_blank"} <= failed


def test_cli_validate_exits_1_naming_rows(broken: dict, tmp_path: Path) -> None:
    dataset: Path = broken["dataset"]
    params = tmp_path / "params.yaml"
    params.write_text(
        f"data:\n  prepared_dir: {dataset.parent}\n  name: {dataset.name}\n"
        f"validate:\n  report_dir: {tmp_path / 'report'}\n  workers: 1\n"
    )
    dove = str(Path(sys.executable).with_name("dove"))
    run = subprocess.run([dove, "validate", "-p", str(params)], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    error_lines = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1
    assert broken["ids"]["truncated"] in error_lines[0]
    assert "data gate FAILED" in run.stdout
    assert (tmp_path / "report" / "summary.json").is_file()
