"""Validation throughput on the shared UCM set (2,100 images listed, 1,890 here), images/s.

Prints figures, asserts nothing. Run: ``.venv/bin/python bench/bench_validate.py``
(``--workers N`` to pin the process pool; default: the CPU count).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from dove_model.config import parse_params
from dove_model.data.importer import import_dataset
from dove_model.data.manifest import read_manifest
from dove_model.quality.image_table import image_table
from dove_model.quality.validate import validate

UCM = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ucm-captions"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ucm", type=Path, default=UCM)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (args.ucm / "dataset.json").is_file():
        print(f"UCM-Captions not found at {args.ucm}; nothing to measure")
        return 0
    workers = args.workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        dataset = import_dataset("karpathy", args.ucm, Path(tmp) / "ucm", progress=False)
        seconds = time.perf_counter() - start
        manifest = read_manifest(dataset)
        n = manifest["image_id"].nunique()
        print(
            f"import (link + sha256 + size): {n} images in {seconds:.2f} s "
            f"= {n / seconds:.0f} images/s"
        )

        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            image_table(manifest, dataset, workers=workers, progress=False)
            best = min(best, time.perf_counter() - start)
        print(
            f"image checks (read, sha256, decode, pixel std; {workers} workers): "
            f"{n / best:.0f} images/s (best of {args.repeats}, {best:.2f} s)"
        )

        cpu = time.process_time()
        image_table(manifest, dataset, workers=1, progress=False)
        cpu = time.process_time() - cpu
        print(
            f"image checks per CPU-second (1 worker, process time; independent of the other "
            f"jobs sharing the cores): {n / cpu:.0f} images/s"
        )

        start = time.perf_counter()
        import great_expectations  # noqa: F401  # a one-off cost per process, shown apart

        print(f"import great_expectations (once per process): {time.perf_counter() - start:.2f} s")
        params = parse_params({"validate": {"workers": workers}})
        start = time.perf_counter()
        result = validate(dataset, params, Path(tmp) / "report", progress=False)
        seconds = time.perf_counter() - start
        print(
            f"full validate stage (image checks + 3 GE suites + Data Docs, GE already imported): "
            f"{n / seconds:.0f} "
            f"images/s ({seconds:.2f} s; inspect {result.seconds['inspect_images']:.2f} s, "
            f"expectations {result.seconds['expectations']:.2f} s; passed={result.passed})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
