"""Data parallelism through torchrun, for every family: two CPU processes (gloo) train a
few steps and end identical."""

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
from dove_model.families.registry import family_names, family_spec


@pytest.mark.integration
@pytest.mark.parametrize("family", family_names())
def test_two_cpu_ranks_end_with_identical_weights(family: str, tmp_path: Path) -> None:
    synth = SynthParams(n_images=16, image_size=64, val_fraction=0.25, test_fraction=0.0)
    data = DataParams(
        path=str(tmp_path / "synth"), prepared_dir=str(tmp_path / "prepared"), synth=synth
    )
    dataset = prepare(Params(data=data), progress=False)
    demo = {**family_spec(family).tiny_profile(tmp_path), "epochs": 2, "batch_size": 8}
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
    assert history["family"] == family
    # the global batch of 8 is split over the two ranks: as many steps as one process takes
    # (a family that keeps the last short batch takes one more)
    full = load_split(dataset, "train").n_captions // 8
    steps = [e["steps"] for e in history["epochs"]]
    assert steps[0] == steps[1] and steps[0] in (full, full + 1)
    assert (out / "model" / "model.safetensors").is_file()
