"""The GPU check: the `paper` profile on real UCM images, and its training speed bf16 vs fp32.

    python3 bench/gpu_paper.py --data .device/ucm
        --weights .device/weights/tf_efficientnet_lite2.safetensors --out "$OUT"
        [--seeds 0 1] [--epochs 15] [--seconds 540] [--workers 8] [--steps 30]

Run on the device machine through ``bench/gpu_check.sh`` (``bench/gpu_pack.py`` packs its
inputs). The `paper` profile there is EfficientNet-Lite2 from the ImageNet weights file,
fine-tuned. In order:

1. The training step's speed in bf16 autocast, in fp32 (TF32 as PyTorch's defaults allow)
   and in bf16 with ``channels_last`` (NHWC images and convolutions):
   ``--steps`` timed steps on batches decoded once and kept on the GPU, so the image loader
   is not what is measured (``dove_model.families.dove.throughput.step_throughput``).
2. One whole epoch in bf16 (in the faster layout) with ``--workers`` data-loader processes:
   what training gets with real image loading.
3. The quality: full DOVE, every train image trains and the best epoch is selected on
   ``test`` (the issue's protocol), one run per seed. The time left before the deadline
   (``--seconds`` after the start, less a reserve for evaluation) is shared among the seeds
   still to run; a seed out of time keeps its best epoch so far and says how many it ran.

``gpu_paper.json`` under ``--out`` is rewritten after every step, and a step that fails is
recorded and skipped, so a run cut short keeps what it did. A precision or loader setting that
fails is left out of the seeds' runs. On a CPU it runs too (autocast is then off, so "bf16" is
fp32): that is the dry run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ucm_ablation import prepared_ucm, run_one, run_params

from dove_model.config import Params, load_params
from dove_model.families.dispatch import train
from dove_model.families.dove.throughput import step_throughput

REPO = Path(__file__).resolve().parents[1]
PROFILE = "paper"
BACKBONE = "tf_efficientnet_lite2"
TARGET_MR = 50.0
EVALUATION_RESERVE_S = 45.0  # a seed's evaluation and model save, after its time budget
MIN_SEED_S = 60.0  # no seed starts with less than this for training


def environment() -> dict[str, Any]:
    import timm
    import torchvision

    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
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
        print(f"{key}: {row}", flush=True)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def attempt(
    report: Report, key: str, label: dict[str, Any], work: Callable[[], dict]
) -> dict[str, Any] | None:
    """Run one step; its row (or its error) goes into the report. The row when it worked."""
    start = time.monotonic()
    try:
        row = work()
    except Exception as exc:  # one failed step must not cost the others
        report.add(key, {**label, "error": f"{type(exc).__name__}: {exc}"[:500]})
        return None
    row = {**label, **row, "wall_s": round(time.monotonic() - start, 1)}
    report.add(key, row)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a UCM-Captions folder")
    parser.add_argument("--weights", type=Path, required=True, help="Lite2 timm weights file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dove-gpu-check"))
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=540.0, help="deadline, from start")
    parser.add_argument("--workers", type=int, default=8, help="data-loader processes")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per precision")
    args = parser.parse_args()
    for path, what in ((args.data / "dataset.json", "UCM-Captions"), (args.weights, "weights")):
        if not path.is_file():
            raise SystemExit(f"{what} not found: {path} (run bench/gpu_pack.py first)")
    deadline = time.monotonic() + args.seconds
    base = load_params(args.params)
    model = {"backbone": BACKBONE, "pretrained_path": str(args.weights.resolve())}
    dataset = prepared_ucm(args.work, args.data, carve_val=False)
    report = Report(args.out, environment=environment(), epochs=args.epochs, profile=PROFILE)

    def params(seed: int, epochs: int, **changes: object) -> Params:
        return run_params(
            base, PROFILE, model, seed, epochs, "test", args.work, profile_changes=changes
        )

    def steps(amp: bool, channels_last: bool = False) -> dict[str, Any]:
        run = params(0, 1, amp=amp, channels_last=channels_last)
        result = step_throughput(dataset, run, steps=args.steps)
        peak = result.peak_memory_gib
        return {
            "samples_per_s": round(result.samples_per_s, 1),
            "batch_size": result.batch_size,
            "peak_gib": None if peak is None else round(peak, 2),
        }

    bf16 = attempt(report, "throughput", {"setting": "step, bf16"}, lambda: steps(True))
    fp32 = attempt(report, "throughput", {"setting": "step, fp32"}, lambda: steps(False))
    nhwc = attempt(
        report, "throughput", {"setting": "step, bf16, channels_last"}, lambda: steps(True, True)
    )
    amp = bf16 is not None or fp32 is None
    # the seeds train in the faster bf16 layout
    channels_last = nhwc is not None and (
        bf16 is None or nhwc["samples_per_s"] > bf16["samples_per_s"]
    )

    def loader_epoch() -> dict[str, Any]:
        run = params(0, 1, amp=amp, channels_last=channels_last, num_workers=args.workers)
        result = train(dataset, run, args.work / "loader-epoch", resume=False, progress=False)
        return {"samples_per_s": round(result.train_samples_per_s, 1)}

    layout = ", channels_last" if channels_last else ""
    loader_label = {
        "setting": f"epoch, {'bf16' if amp else 'fp32'}{layout}, {args.workers} workers"
    }
    loaded = attempt(report, "throughput", loader_label, loader_epoch)
    workers = args.workers if loaded is not None else 0

    for done, seed in enumerate(args.seeds):
        left = deadline - time.monotonic()
        share = left / (len(args.seeds) - done) - EVALUATION_RESERVE_S
        if share < MIN_SEED_S:
            print(f"seed {seed} not started: {left:.0f} s left before the deadline", flush=True)
            break
        run = params(
            seed,
            args.epochs,
            amp=amp,
            channels_last=channels_last,
            num_workers=workers,
            max_minutes=share / 60,
        )

        def one(run: Params = run, seed: int = seed) -> dict[str, Any]:
            return run_one(dataset, run, args.work / f"paper-seed{seed}")

        attempt(report, "runs", {"seed": seed, "budget_s": round(share)}, one)
    values = [r["mR"] for r in report.data["runs"] if "mR" in r]
    if values:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        report.data["mR"] = [statistics.fmean(values), spread]
        report.save()
        print(
            f"paper profile, {len(values)} seed(s): test mR {statistics.fmean(values):.2f} +- "
            f"{spread:.2f} (target {TARGET_MR}); "
            f"{args.seconds - (deadline - time.monotonic()):.0f} s in all"
        )


if __name__ == "__main__":
    main()
