"""Every format parser on small fixtures written here, plus the bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dove_model.data.formats import parse
from dove_model.data.importer import import_dataset
from dove_model.data.manifest import MANIFEST_COLUMNS, read_manifest
from dove_model.errors import DataFormatError


def _image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 32), colour).save(path)


def test_karpathy(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "bridge_1.jpg")
    doc = {
        "images": [
            {
                "filename": "bridge_1.jpg",
                "split": "restval",
                "sentences": [{"raw": "A bridge ."}, {"tokens": ["a", "river"]}],
            },
            {"filename": "9.jpg", "split": "test", "sentences": [{"raw": "Lake ."}]},
        ]
    }
    (tmp_path / "dataset.json").write_text(json.dumps(doc))
    records = parse("karpathy", tmp_path)
    frame = records.frame
    assert list(frame["caption"]) == ["A bridge .", "a river", "Lake ."]
    assert list(frame["split"]) == ["train", "train", "test"]
    assert list(frame["label"].fillna("-")) == ["bridge", "bridge", "-"]
    assert records.images_root == tmp_path / "images"


def test_amfmn_both_filename_layouts(tmp_path: Path) -> None:
    folder = tmp_path / "x_precomp"
    folder.mkdir()
    (folder / "train_caps.txt").write_text("a\nb\n\nd\n")  # 2 captions per image
    (folder / "train_filename.txt").write_text("lake_1.tif\npark_2.tif\n")
    (folder / "test_caps.txt").write_text("e\nf\n")  # one filename per caption
    (folder / "test_filename.txt").write_text("beach_3.tif\nbeach_3.tif\n")
    frame = parse("amfmn", tmp_path).frame
    train = frame[frame["split"] == "train"]
    assert list(train["image"]) == ["lake_1.tif", "lake_1.tif", "park_2.tif", "park_2.tif"]
    assert list(train["caption"]) == ["a", "b", "", "d"]
    assert list(train["source_line"]) == [1, 2, 3, 4]
    assert set(frame.loc[frame["split"] == "test", "image_id"]) == {"beach_3"}
    assert list(frame["label"].unique()) == ["lake", "park", "beach"]


def test_amfmn_count_mismatch_names_file(tmp_path: Path) -> None:
    (tmp_path / "train_caps.txt").write_text("a\nb\nc\n")
    (tmp_path / "train_filename.txt").write_text("x_1.tif\ny_2.tif\n")
    with pytest.raises(DataFormatError, match=r"train_caps\.txt: 3 captions"):
        parse("amfmn", tmp_path)


def test_pir(tmp_path: Path) -> None:
    train = [
        {"caption": "a bridge", "image": "train/bridge_942.tif", "label_name": "bridge"},
        {"caption": "two cars", "image": "train/bridge_942.tif", "label_name": "bridge"},
    ]
    test = [{"image": "test/parking_229.tif", "caption": ["c1", "c2", "c3"]}]
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "test.json").write_text(json.dumps(test))
    frame = parse("pir", tmp_path).frame
    assert len(frame) == 5
    assert list(frame["split"].unique()) == ["test", "train"]
    assert set(frame["image_id"]) == {"train/bridge_942", "test/parking_229"}
    assert set(frame["label"]) == {"bridge", "parking"}


def test_csv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "captions.csv").write_text(
        'image,caption,split,label\na.png,"one, two",train,x\nb.png,three,val,\n'
    )
    frame = parse("csv", tmp_path).frame
    assert list(frame["caption"]) == ["one, two", "three"]
    assert list(frame["source_line"]) == [2, 3]
    assert frame["label"].isna().tolist() == [False, True]
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"image": "a.png", "caption": "c", "split": "test"}\n')
    assert parse("csv", jsonl).frame["split"].tolist() == ["test"]


@pytest.mark.parametrize(
    ("fmt", "name", "content", "pattern"),
    [
        ("karpathy", "dataset.json", '{"images": [', r"dataset\.json:1: not valid JSON"),
        ("karpathy", "dataset.json", '{"images": [{"filename": "a.jpg"}]}', r"missing key"),
        ("csv", "c.csv", "image,caption\na.png,x\n", r"c\.csv:1: missing column\(s\) split"),
        ("csv", "c.csv", "image,caption,split\na.png,x,train,extra\n", r"c\.csv:2: more fields"),
        ("csv", "c.csv", "image,caption,split\na.png,x,holdout\n", r"c\.csv:2: unknown split"),
        (
            "csv",
            "c.jsonl",
            '{"image": "a", "caption": "c", "split": "val"}\n{oops\n',
            r"c\.jsonl:2: not valid JSON",
        ),
        ("pir", "train.json", '{"a": 1}', r"train\.json: expected a list"),
    ],
)
def test_malformed_input_names_file_and_line(
    tmp_path: Path, fmt: str, name: str, content: str, pattern: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DataFormatError, match=pattern):
        parse(fmt, tmp_path / name)


def test_unknown_format_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="unknown format 'coco'"):
        parse("coco", tmp_path)
    with pytest.raises(DataFormatError, match="no such file or folder"):
        parse("csv", tmp_path / "nope.csv")


def test_import_links_hashes_and_reports_missing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _image(src / "a.png")
    (src / "captions.csv").write_text("image,caption,split\na.png,red,train\nb.png,gone,test\n")
    out = import_dataset("csv", src, tmp_path / "out", progress=False)
    manifest = read_manifest(out)
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    present = manifest.iloc[0]
    assert present["image_path"] == "images/a.png"
    assert (out / "images" / "a.png").read_bytes() == (src / "a.png").read_bytes()
    assert (present["width"], present["height"]) == (40, 32)
    assert len(present["sha256"]) == 64
    assert manifest["sha256"].isna().tolist() == [False, True]
    info = json.loads((out / "dataset.json").read_text())
    assert info["n_missing_images"] == 1


def test_import_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "captions.csv").write_text("image,caption,split\n../../etc/passwd,x,train\n")
    with pytest.raises(DataFormatError, match="leaves the images folder"):
        import_dataset("csv", src, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def _csv(folder: Path, rows: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "captions.csv").write_text("image,caption,split\n" + rows)


@pytest.mark.parametrize("target", ["outside file", "/etc/passwd"])
def test_a_file_symlink_leaving_the_images_folder_is_refused(tmp_path: Path, target: str) -> None:
    src = tmp_path / "src"
    _image(src / "a.png")
    outside = tmp_path / "secret.png"
    _image(outside)
    link_to = outside if target == "outside file" else Path(target)
    if not link_to.exists():
        pytest.skip(f"{link_to} does not exist here")
    (src / "b.png").symlink_to(link_to)
    _csv(src, "a.png,red,train\nb.png,stolen,train\n")
    with pytest.raises(DataFormatError, match=r"captions\.csv:3: image path 'b\.png' resolves to"):
        import_dataset("csv", src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_folder_symlink_leaving_the_images_folder_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _image(src / "a.png")
    _image(tmp_path / "elsewhere" / "x.png")
    (src / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _csv(src, "a.png,red,train\nmore/x.png,pulled in,test\n")
    with pytest.raises(DataFormatError, match=r"captions\.csv:3: .*outside the images folder"):
        import_dataset("csv", src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_symlink_inside_the_images_folder_is_imported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _image(src / "real" / "a.png")
    (src / "alias").symlink_to(src / "real", target_is_directory=True)
    _csv(src, "alias/a.png,red,train\n")
    out = import_dataset("csv", src, tmp_path / "out", progress=False)
    manifest = read_manifest(out)
    assert manifest["sha256"].notna().all()
    assert (out / "images" / "alias" / "a.png").read_bytes() == (src / "real/a.png").read_bytes()


def test_two_spellings_of_one_image_are_one_image_and_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _image(src / "a.png")
    _image(src / "b.png", (10, 200, 10))
    _csv(src, "a.png,red,train\n./a.png,crimson,train\nb.png,green,test\n")
    out = import_dataset("csv", src, tmp_path / "out", progress=False)
    manifest = read_manifest(out)
    assert list(manifest["image_id"]) == ["a", "a", "b"]
    assert list(manifest["image_path"]) == ["images/a.png", "images/a.png", "images/b.png"]
    assert manifest["sha256"].notna().all()
    info = json.loads((out / "dataset.json").read_text())
    assert info["n_images"] == 2
    assert info["duplicate_image_paths"] == [
        {"file": "images/a.png", "paths": ["a.png", "./a.png"], "lines": [2, 3]}
    ]


def test_the_import_command_warns_about_duplicate_paths(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dove_model.cli import app

    src = tmp_path / "src"
    _image(src / "a.png")
    _csv(src, "a.png,red,train\n./a.png,crimson,train\n")
    out = str(tmp_path / "out")
    result = CliRunner().invoke(app, ["data", "import", str(src), "-f", "csv", "-o", out])
    assert result.exit_code == 0, result.output
    assert "imported 1 images, 2 captions" in result.output
    assert "warning: images/a.png is named by several paths: lines 2, 3 ('a.png', './a.png')" in (
        result.output
    )
