"""bench/ucm_ablation.py at tiny size: every variant, two seeds, equal epochs, mean +- std."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dove_model.config import parse_params
from dove_model.testing.karpathy import karpathy_folder

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "epochs": 2,
    "batch_size": 8,
    "resize": 64,
    "crop": 64,
    "eval_size": 64,
    "rotation_degrees": 0,
    "amp": False,
    "model": {
        "family": "dove",
        "backbone": "resnet18",
        "embed_dim": 16,
        "word_dim": 8,
        "vocab_min_freq": 1,
    },
}


@pytest.mark.slow
def test_the_ablation_script_reports_every_variant_over_seeds(tmp_path: Path) -> None:
    data = karpathy_folder(tmp_path / "ucm")
    params = parse_params({"train": {"profile": "tiny", "profiles": {"tiny": TINY}}})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)))
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "ucm_ablation.py"),
            "--profile",
            "tiny",
            "--params",
            str(params_file),
            "--data",
            str(data),
            "--out",
            str(out),
            "--seeds",
            "0",
            "1",
            "--select",
            "val",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.loads((out / "table.json").read_text())
    names = ["DOVE (full)", "w/o ROAM (VSE)", "w/o DTGA", "w/o global constraint"]
    assert list(table["summary"]) == names
    for name in names:
        runs = table["runs"][name]
        assert len(runs) == 2 and {r["epochs"] for r in runs} == {2}  # equal epochs
        mean, std = table["summary"][name]["mR"]
        assert mean == pytest.approx(sum(r["mR"] for r in runs) / 2) and std >= 0
        assert 0 <= table["summary"][name]["two_stage_mR"][0] <= 100
    assert "selection on `val`" in table["caption"]
    assert (out / "ablation.png").stat().st_size > 1000
    assert "± " in (out / "table.md").read_text() and "| DOVE (full) |" in result.stdout
