"""Pack what the GPU check needs into ``.device/`` (git-ignored), under the device's 64 MiB.

    .venv/bin/python bench/gpu_pack.py [--data ../shared/datasets/ucm-captions]
        [--quality 85] [--images N] [--out .device]

The device machine (``bench/gpu_check.sh``) gets the repository and the paths it is told to
carry, nothing else, and has no network: so this writes

- ``ucm/``: UCM-Captions (``dataset.json`` + images), the JPEGs re-encoded at ``--quality``
  (the originals are about 95: 64 MiB, too much next to the rest; 85 gives about 33 MiB) and,
  with ``--images N``, only every k-th image so that N remain (a CPU dry run);
- ``weights/tf_efficientnet_lite2.safetensors``: the offline store's Lite2 ImageNet weights
  in float16 (12 MiB instead of 24; loaded into float32 parameters, a 5e-4 relative change);
- ``wheels/``: the packages the device image lacks (pydantic and its dependencies) for
  CPython 3.11 and 3.12, downloaded from PyPI here.

It fails, writing nothing half-done, when the result would not fit the device's limit.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from dove_model.model import weights

REPO = Path(__file__).resolve().parents[1]
UCM = REPO.parent / "shared" / "datasets" / "ucm-captions"
BACKBONE = "tf_efficientnet_lite2"
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
PYTHONS = ("3.11", "3.12")
DEVICE_LIMIT = 64 * 2**20
HEADROOM = 4 * 2**20  # the device copies untracked files and shared/ too: keep some room
FP16_MAX = torch.finfo(torch.float16).max


def pack_dataset(source: Path, target: Path, quality: int, images: int | None) -> int:
    """UCM re-encoded into ``target``; returns the number of images."""
    meta = json.loads((source / "dataset.json").read_text())
    entries = meta["images"]
    if images is not None:
        step = max(len(entries) // images, 1)
        entries = entries[::step][:images]
    (target / "images").mkdir(parents=True)
    for entry in entries:
        image = Image.open(source / "images" / entry["filename"]).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        (target / "images" / entry["filename"]).write_bytes(buffer.getvalue())
    (target / "dataset.json").write_text(json.dumps({**meta, "images": entries}))
    return len(entries)


def pack_weights(target: Path) -> Path:
    """The store's Lite2 weights in float16 (every value must fit float16)."""
    state = load_file(str(weights.resolve(BACKBONE)))
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.abs().max() > FP16_MAX:
            raise SystemExit(f"{name} does not fit float16; cannot shrink the weights")
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    target.mkdir(parents=True)
    path = target / f"{BACKBONE}.safetensors"
    save_file(half, str(path))
    return path


def download_wheels(target: Path) -> None:
    """The pinned versions installed here, as wheels for each Python the check may meet."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    for python in PYTHONS:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
                "--platform", "manylinux_2_17_x86_64", "--implementation", "cp",
                "--python-version", python, "--dest", str(target), *pins,
            ],
            check=True,
        )  # fmt: skip


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tracked_bytes() -> int:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    return sum((REPO / n).stat().st_size for n in names if n and (REPO / n).is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=UCM, help="a UCM-Captions folder")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality, 1-95")
    parser.add_argument("--images", type=int, default=None, help="keep only this many")
    parser.add_argument("--out", type=Path, default=REPO / ".device")
    args = parser.parse_args()
    if not (args.data / "dataset.json").is_file():
        raise SystemExit(f"UCM-Captions not found at {args.data} (dataset.json missing)")
    if not 1 <= args.quality <= 95:
        raise SystemExit(f"--quality must be 1-95, not {args.quality}")
    with tempfile.TemporaryDirectory(prefix=".device-", dir=args.out.parent) as tmp_name:
        staging = Path(tmp_name)
        count = pack_dataset(args.data, staging / "ucm", args.quality, args.images)
        pack_weights(staging / "weights")
        download_wheels(staging / "wheels")
        packed, repo = tree_bytes(staging), tracked_bytes()
        mib = f"{packed / 2**20:.1f} MiB packed + {repo / 2**20:.1f} MiB tracked"
        if packed + repo > DEVICE_LIMIT - HEADROOM:
            raise SystemExit(f"{mib}: over the device's 64 MiB less headroom; lower --quality")
        if args.out.exists():
            shutil.rmtree(args.out)
        staging.rename(args.out)
        staging.mkdir()  # the context manager removes what it made
    print(f"{args.out}: {count} images at JPEG quality {args.quality}, {mib}")


if __name__ == "__main__":
    main()
