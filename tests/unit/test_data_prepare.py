"""The prepare stage and the data CLI: canonical layout, contract, one-line errors, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dove_model.config import parse_params
from dove_model.data.manifest import load_split, read_manifest
from dove_model.data.prepare import prepare

DOVE = [str(Path(sys.executable).with_name("dove"))]


def _params(tmp_path: Path, **data: object) -> dict:
    return {
        "data": {
            "path": str(tmp_path / "synth"),
            "prepared_dir": str(tmp_path / "prepared"),
            "synth": {"n_images": 28, "seed": 1},
            **data,
        }
    }


def test_prepare_renders_synth_when_absent_and_honours_contract(tmp_path: Path) -> None:
    out = prepare(parse_params(_params(tmp_path)), progress=False)
    assert out == tmp_path / "prepared" / "synth"
    assert (tmp_path / "synth" / "captions.csv").is_file()
    manifest = read_manifest(out)
    assert len(manifest) == 28 * 5
    assert manifest["sha256"].notna().all()
    assert manifest["caption_id"].is_unique
    train = load_split(out, "train")
    assert train.n_captions == 5 * train.n_images
    assert all(p.is_file() for p in train.image_paths)
    assert set(train.labels) == set(manifest["label"])


def test_prepare_re_renders_when_synth_settings_change(tmp_path: Path) -> None:
    prepare(parse_params(_params(tmp_path)), progress=False)
    changed = _params(tmp_path)
    changed["data"]["synth"] = {"n_images": 14, "seed": 1}
    out = prepare(parse_params(changed), progress=False)
    assert len(read_manifest(out)) == 14 * 5
    info = json.loads((tmp_path / "synth" / "synth.json").read_text())
    assert info["n_images"] == 14


def test_prepare_real_format_requires_path(tmp_path: Path) -> None:
    from dove_model.errors import ConfigError

    params = parse_params({"data": {"source": "karpathy"}})
    with pytest.raises(ConfigError, match=r"data\.path is required"):
        prepare(params)


def _dove(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # run the CLI in a subprocess: exit code and stderr exactly as a user sees them
    src = str(Path(__file__).resolve().parents[2])
    env = {"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}
    return subprocess.run([*DOVE, *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_cli_synth_then_prepare(tmp_path: Path) -> None:
    params = _params(tmp_path)
    params["data"]["synth"]["n_images"] = 14
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    synth = _dove("data", "synth", "--out", str(tmp_path / "synth"), cwd=tmp_path)
    assert synth.returncode == 0, synth.stderr
    assert "rendered 14 images, 70 captions" in synth.stdout
    rendered_at = (tmp_path / "synth" / "synth.json").stat().st_mtime_ns
    prep = _dove("prepare", cwd=tmp_path)
    assert prep.returncode == 0, prep.stderr
    assert len(read_manifest(tmp_path / "prepared" / "synth")) == 70
    assert (tmp_path / "synth" / "synth.json").stat().st_mtime_ns == rendered_at  # reused


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "coco"], "unknown format 'coco'"),
        (["--format", "csv", "--images-dir", "/nonexistent"], "/nonexistent: images folder"),
    ],
)
def test_cli_import_errors_are_one_line_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "captions.csv").write_text("image,caption,split\na.png,x,train\n")
    out = tmp_path / "out"
    result = _dove(
        "data", "import", str(tmp_path / "captions.csv"), *args, "-o", str(out), cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not out.exists()


def test_cli_import_missing_path_and_bad_csv_line(tmp_path: Path) -> None:
    missing = _dove("data", "import", "nope.csv", "-f", "csv", "-o", "out", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.csv: no such file or folder" in missing.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("image,caption,split\na.png,x,train\nb.png,y\n")
    result = _dove("data", "import", str(bad), "-f", "csv", "-o", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{bad}:3: missing value(s) for split" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_validate_bad_manifest_is_one_line_exit_2(tmp_path: Path) -> None:
    import pandas as pd

    dataset = tmp_path / "prepared" / "synth"
    dataset.mkdir(parents=True)
    pd.DataFrame({"image_id": ["a"], "caption": ["x"]}).to_parquet(dataset / "manifest.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_params(tmp_path)))
    result = _dove("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "manifest.parquet: missing required column(s) image_path, caption_id, split" in (
        result.stderr
    )
    assert not (tmp_path / "reports").exists()
    missing = _dove("validate", "--dataset-dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "manifest not found" in missing.stderr
