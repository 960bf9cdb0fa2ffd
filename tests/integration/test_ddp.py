"""DDP through torchrun: two CPU processes (gloo) train a few steps and end identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dove_model.config import DataParams, Params, SynthParams, parse_params
from dove_model.data.manifest import load_split
from dove_model.data.prepare import prepare

TINY_MODEL = {
    "family": "dove",
    "backbone": "resnet18",
    "embed_dim": 32,
    "word_dim": 16,
    "vocab_min_freq": 1,
}


@pytest.mark.integration
def test_two_cpu_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    synth = SynthParams(n_images=16, image_size=64, val_fraction=0.25, test_fraction=0.0)
    data = DataParams(
        path=str(tmp_path / "synth"), prepared_dir=str(tmp_path / "prepared"), synth=synth
    )
    dataset = prepare(Params(data=data), progress=False)
    demo = {
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "resize": 72,
        "crop": 64,
        "eval_size": 64,
        "amp": False,
        "max_minutes": None,
        "model": TINY_MODEL,
    }
    params = parse_params(
        {
            "train": {
                "profile": "demo",
                "cache_dir": str(tmp_path / "cache"),
                "device": "cpu",
                "profiles": {"demo": demo},
            }
        }
    )
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)))
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(bin_dir / "torchrun"),
            "--standalone",
            "--nproc_per_node=2",
            "--no-python",
            str(bin_dir / "dove"),
            "train",
            "-p",
            str(params_file),
            "-d",
            str(dataset),
            "-o",
            str(out),
            "--fresh",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    ddp = history["ddp"]
    assert ddp["world_size"] == 2
    assert len(ddp["rank_weight_sha256"]) == 2
    assert len(set(ddp["rank_weight_sha256"])) == 1
    # the global batch of 8 is split over the two ranks: as many steps as one process takes
    steps = load_split(dataset, "train").n_captions // 8
    assert [e["steps"] for e in history["epochs"]] == [steps, steps]
    assert (out / "model" / "model.safetensors").is_file()
