"""The GPU check: the `paper` profile on real UCM images, and its training speed bf16 vs fp32.

    python3 bench/gpu_paper.py --data .device/ucm
        --weights .device/weights/tf_efficientnet_lite2.safetensors --out "$OUT"
        [--seeds 0 1] [--epochs 15] [--minutes 7] [--workers 8]

Run on the device machine through ``bench/gpu_check.sh`` (``bench/gpu_pack.py`` packs its
inputs). First the throughput: one epoch of the `paper` profile (EfficientNet-Lite2 from the
ImageNet weights file, fine-tuned) in bf16 autocast, in fp32, and in bf16 with ``--workers``
data-loader processes; training captions per second of the training loop. Then the quality:
full DOVE, every train image trains and the best epoch is selected on ``test`` (the issue's
protocol), one run per seed, each written to ``gpu_paper.json`` as soon as it ends. No seed
starts that the ``--minutes`` budget cannot hold at the pace of the first.

On a CPU it runs too (autocast is then off, so "bf16" is fp32): that is the dry run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ucm_ablation import prepared_ucm, run_one, run_params

from dove_model.config import load_params
from dove_model.training.train import train

REPO = Path(__file__).resolve().parents[1]
PROFILE = "paper"
BACKBONE = "tf_efficientnet_lite2"
TARGET_MR = 50.0


def environment() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
    }


class Report:
    """``gpu_paper.json`` under ``out``, rewritten after every step (a cut-off run keeps
    what it finished)."""

    def __init__(self, out: Path, **header: Any) -> None:
        self.path = out / "gpu_paper.json"
        self.data: dict[str, Any] = {**header, "throughput": [], "runs": []}
        out.mkdir(parents=True, exist_ok=True)
        self.save()

    def add(self, key: str, row: dict[str, Any]) -> None:
        self.data[key].append(row)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a UCM-Captions folder")
    parser.add_argument("--weights", type=Path, required=True, help="Lite2 timm weights file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dove-gpu-check"))
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--minutes", type=float, default=7.0, help="budget for the seeds")
    parser.add_argument("--workers", type=int, default=8, help="data-loader processes")
    args = parser.parse_args()
    for path, what in ((args.data / "dataset.json", "UCM-Captions"), (args.weights, "weights")):
        if not path.is_file():
            raise SystemExit(f"{what} not found: {path} (run bench/gpu_pack.py first)")
    start = time.monotonic()
    base = load_params(args.params)
    model = {"backbone": BACKBONE, "pretrained_path": str(args.weights.resolve())}
    dataset = prepared_ucm(args.work, args.data, carve_val=False)
    report = Report(args.out, environment=environment(), epochs=args.epochs, profile=PROFILE)
    print(f"{report.data['environment']}", flush=True)

    loader_workers = args.workers
    for name, changes in (
        ("bf16", {"amp": True, "num_workers": 0}),
        ("fp32", {"amp": False, "num_workers": 0}),
        (f"bf16, {args.workers} loader workers", {"amp": True, "num_workers": args.workers}),
    ):
        params = run_params(
            base, PROFILE, model, 0, 1, "test", args.work / "speed", profile_changes=changes
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.monotonic()
        try:
            result = train(
                dataset, params, args.work / "speed" / name.replace(" ", "_"), resume=False
            )
        except Exception as exc:  # one failed setting must not cost the others
            report.add("throughput", {"setting": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"throughput {name}: failed ({exc})", flush=True)
            loader_workers = 0 if changes["num_workers"] else loader_workers
            continue
        row = {
            "setting": name,
            "samples_per_s": round(result.train_samples_per_s, 1),
            "epoch_s": round(time.monotonic() - t0, 1),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if torch.cuda.is_available()
            else None,
        }
        report.add("throughput", row)
        print(f"throughput {name}: {row}", flush=True)

    budget = args.minutes * 60
    seeds_start = time.monotonic()
    for done, seed in enumerate(args.seeds):
        elapsed = time.monotonic() - seeds_start
        if done and elapsed / done > budget - elapsed:
            print(f"seed {seed} skipped: {elapsed:.0f} s of {budget:.0f} s used", flush=True)
            break
        params = run_params(
            base, PROFILE, model, seed, args.epochs, "test", args.work,
            profile_changes={"num_workers": loader_workers},
        )  # fmt: skip
        row = run_one(dataset, params, args.work / f"paper-seed{seed}")
        report.add("runs", {"seed": seed, **row})
        print(
            f"seed {seed}: test mR {row['mR']:.2f} (best epoch {row['best_epoch']}/"
            f"{row['epochs']}, {row['seconds']:.0f} s)",
            flush=True,
        )
    values = [r["mR"] for r in report.data["runs"]]
    if values:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        report.data["mR"] = [statistics.fmean(values), spread]
        report.save()
        print(
            f"paper profile, {len(values)} seed(s): test mR {statistics.fmean(values):.2f} +- "
            f"{spread:.2f} (target {TARGET_MR}); {time.monotonic() - start:.0f} s in all"
        )


if __name__ == "__main__":
    main()
