"""`dove train` and `dove evaluate` as a user runs them: files, exit codes, error lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dove_model.config import DataParams, Params, SynthParams, parse_params
from dove_model.data.prepare import prepare
from dove_model.families.dove.spec import TINY_PROFILE

TINY_MODEL = TINY_PROFILE["model"]  # the family's tiny model: a random resnet18
DOVE = str(Path(sys.executable).parent / "dove")


def write_params(path: Path, tmp: Path, **model: object) -> Path:
    demo = {
        "epochs": 1,
        "batch_size": 16,
        "resize": 72,
        "crop": 64,
        "eval_size": 64,
        "max_minutes": None,
        "model": {**TINY_MODEL, **model},
    }
    params = parse_params(
        {
            "train": {
                "profile": "demo",
                "cache_dir": str(tmp / "cache"),
                "device": "cpu",
                "out_dir": str(tmp / "train"),
                "profiles": {"demo": demo},
            },
            "evaluate": {"out_file": str(tmp / "metrics.json"), "two_stage_k": 5},
        }
    )
    path.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)))
    return path


def dove(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOVE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.integration
def test_train_then_evaluate_then_refuse_a_mismatched_checkpoint(tmp_path: Path) -> None:
    synth = SynthParams(n_images=16, image_size=64, val_fraction=0.25, test_fraction=0.25)
    data = DataParams(
        path=str(tmp_path / "synth"), prepared_dir=str(tmp_path / "prepared"), synth=synth
    )
    dataset = str(prepare(Params(data=data), progress=False))
    params = write_params(tmp_path / "params.yaml", tmp_path)

    trained = dove("train", "-p", str(params), "-d", dataset, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "random chance" in trained.stdout
    assert (tmp_path / "train" / "model" / "model.safetensors").is_file()

    scored = dove("evaluate", "-p", str(params), "-d", dataset, cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["split"] == "test" and "two_stage_mR_gap" in metrics

    other = write_params(tmp_path / "other.yaml", tmp_path, embed_dim=16)
    refused = dove("train", "-p", str(other), "-d", dataset, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and "model.embed_dim=32" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
