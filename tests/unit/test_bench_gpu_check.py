"""The GPU check's two halves on CPU: bench/gpu_pack.py (what travels) and
bench/gpu_paper.py (what runs there), at tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from dove_model.config import parse_params
from dove_model.model import weights
from dove_model.testing.karpathy import karpathy_folder

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import gpu_pack  # noqa: E402

TINY_PAPER = {
    "epochs": 1,
    "batch_size": 8,
    "resize": 64,
    "crop": 64,
    "eval_size": 64,
    "rotation_degrees": 0,
    "feature_cache": False,
    "model": {
        "family": "dove",
        "freeze_backbone": False,
        "pretrained": True,
        "embed_dim": 16,
        "word_dim": 8,
    },
}


def test_the_pack_keeps_every_kth_image_re_encoded(tmp_path: Path) -> None:
    source = karpathy_folder(tmp_path / "ucm")
    count = gpu_pack.pack_dataset(source, tmp_path / "packed", quality=80, images=5)
    meta = json.loads((tmp_path / "packed" / "dataset.json").read_text())
    assert count == len(meta["images"]) == 5
    assert {e["split"] for e in meta["images"]} == {"train", "test"}  # every 5th: both splits
    for entry in meta["images"]:
        with Image.open(tmp_path / "packed" / "images" / entry["filename"]) as image:
            assert image.format == "JPEG" and image.size == (64, 64)


def test_the_packed_weights_are_the_store_s_in_float16(tmp_path: Path) -> None:
    path = gpu_pack.pack_weights(tmp_path / "weights")
    packed, stored = load_file(str(path)), load_file(str(weights.resolve(gpu_pack.BACKBONE)))
    assert packed.keys() == stored.keys()
    for name, tensor in stored.items():
        if tensor.is_floating_point():
            assert packed[name].dtype == torch.float16
            torch.testing.assert_close(packed[name].float(), tensor, rtol=1e-3, atol=1e-4)
    assert path.stat().st_size < 0.6 * weights.resolve(gpu_pack.BACKBONE).stat().st_size


@pytest.mark.slow
def test_the_gpu_check_runs_on_cpu_and_reports_as_it_goes(tmp_path: Path) -> None:
    data = karpathy_folder(tmp_path / "ucm")
    weights_file = gpu_pack.pack_weights(tmp_path / "weights")
    params = parse_params({"train": {"profile": "paper", "profiles": {"paper": TINY_PAPER}}})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)))
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "gpu_paper.py"), "--params", str(params_file),
            "--data", str(data), "--weights", str(weights_file), "--out", str(out),
            "--work", str(tmp_path / "work"), "--seeds", "0", "1", "--epochs", "1",
            "--workers", "0", "--steps", "2",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "gpu_paper.json").read_text())
    assert report["environment"]["device"] == "cpu" and report["profile"] == "paper"
    settings = [r["setting"] for r in report["throughput"]]
    assert settings[:3] == ["step, bf16", "step, fp32", "step, bf16, channels_last"]
    assert settings[3] in ("epoch, bf16, 0 workers", "epoch, bf16, channels_last, 0 workers")
    assert all(r["samples_per_s"] > 0 for r in report["throughput"])
    assert [r["seed"] for r in report["runs"]] == [0, 1]
    assert all(r["epochs"] == 1 and 0 <= r["mR"] <= 100 for r in report["runs"])
    assert all(r["budget_s"] > 0 for r in report["runs"])
    mean, _ = report["mR"]
    assert mean == pytest.approx(sum(r["mR"] for r in report["runs"]) / 2)
    assert "paper profile, 2 seed(s): test mR" in result.stdout


def test_the_gpu_check_says_what_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "gpu_paper.py"), "--data", str(tmp_path),
            "--weights", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "out"),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "run bench/gpu_pack.py first" in result.stderr
    assert not (tmp_path / "out").exists()
