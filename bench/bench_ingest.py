"""`dove archive ingest` throughput (chips/s) and peak memory on a 10,000 x 10,000 px 16-bit
4-band COG (B2, B3, B4, B8; Sentinel-2-like, painted by the synthetic scene renderer), and on
2,500 and 5,000 px ones to show that a worker's memory does not grow with the scene; then the
largest again resampled from 10 m to 20 m.

The scenes are generated once (strip by strip, then GDAL's COG copy with overviews) into
``--cache`` (default: $TMPDIR/dove-bench-ingest) and reused. Each ingest runs in its own
subprocess; a sampler reads the RSS of that process and of its pool workers (psutil) every
50 ms, and the subprocess reports its own and its children's ``ru_maxrss``.

Prints figures, asserts nothing. Run: ``.venv/bin/python bench/bench_ingest.py``
(``--workers 2`` is the default; ``--sizes`` for other scenes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
from rasterio.windows import Window

from dove_model.data.synth_scenes import SCENES
from dove_model.testing.geo_scenes import (
    S2_BANDS,
    north_up,
    s2_bands,
    utm_origin,
    write_big_cog,
)

TILE = 256


def _tile(row: int, col: int) -> np.ndarray:
    labels = list(SCENES)
    rng = np.random.default_rng([7, row, col])
    image, _ = SCENES[labels[(row * 5 + col) % len(labels)]](rng, TILE)
    return np.asarray(image.convert("RGB"))


def _strip(width: int, border: int) -> Callable[[Window], np.ndarray]:
    def block(window: Window) -> np.ndarray:
        rows, top = int(window.height), int(window.row_off)
        rgb = np.zeros((rows, width, 3), dtype=np.uint8)
        for r0 in range(top - top % TILE, top + rows, TILE):
            tiles = [_tile(r0 // TILE, c // TILE) for c in range(0, width, TILE)]
            band = np.concatenate(tiles, axis=1)[:, :width]
            a, b = max(r0, top), min(r0 + TILE, top + rows)
            rgb[a - top : b - top] = band[a - r0 : b - r0]
        out = s2_bands(np.maximum(rgb, 1).transpose(2, 0, 1))
        out[:, :, :border] = 0  # a nodata strip on the west edge
        return out

    return block


def scene(cache: Path, size: int) -> Path:
    path = cache / f"s2like_{size}.tif"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        left, top = utm_origin(9.0, 48.0)
        write_big_cog(
            path,
            size,
            size,
            _strip(size, size // 20),
            count=4,
            dtype="uint16",
            transform=north_up(left, top, 10.0),
            descriptions=[n for n, _ in S2_BANDS],
        )
        print(
            f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB on disk, "
            f"{size * size * 8 / 2**20:.0f} MiB of pixels) in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    return path


def _sample(pid: int, peak: dict[str, float], stop: threading.Event) -> None:
    main = psutil.Process(pid)
    while not stop.is_set():
        try:
            children = main.children(recursive=True)
            worker = max((c.memory_info().rss for c in children), default=0)
            total = main.memory_info().rss + sum(c.memory_info().rss for c in children)
        except psutil.Error:
            break
        peak["worker"] = max(peak["worker"], worker)
        peak["total"] = max(peak["total"], total)
        stop.wait(0.05)


def run_one(source: Path, out: Path, workers: int, gsd: float | None) -> dict[str, float]:
    """The ingest, in this process (the subprocess side)."""
    from dove_model.geo.ingest import ingest
    from dove_model.geo.settings import IngestParams

    params = IngestParams(chip_size=256, bands=("B4", "B3", "B2"), workers=workers, gsd=gsd)
    summary = ingest(source, out, params, progress=False)
    return {
        "chips": summary.n_chips,
        "skipped": summary.skipped_nodata,
        "seconds": summary.seconds,
        "self_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def measure(source: Path, workers: int, gsd: float | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            __file__,
            "--run",
            str(source),
            "--out",
            str(Path(tmp) / "out"),
            "--workers",
            str(workers),
        ] + (["--gsd", str(gsd)] if gsd else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        peak = {"worker": 0.0, "total": 0.0}
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(proc.pid, peak, stop))
        sampler.start()
        stdout, _ = proc.communicate()
        stop.set()
        sampler.join()
        result = json.loads(stdout.strip().splitlines()[-1])
    result["sampled_worker_mib"] = peak["worker"] / 2**20
    result["sampled_total_mib"] = peak["total"] / 2**20
    return result


def report(size: int, gsd: float | None, workers: int, r: dict[str, float]) -> None:
    print(
        f"{size:>6} px  gsd {gsd or 10:>4} m  {workers} workers: "
        f"{r['chips']:>5.0f} chips ({r['skipped']:.0f} skipped) in {r['seconds']:6.1f} s = "
        f"{r['chips'] / r['seconds']:6.1f} chips/s | peak RSS: worker {r['sampled_worker_mib']:.0f}"
        f" MiB (ru_maxrss {r['children_maxrss_mib']:.0f}), main {r['self_maxrss_mib']:.0f} MiB, "
        f"all {r['sampled_total_mib']:.0f} MiB",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "dove-bench-ingest"
    )
    parser.add_argument(
        "--sizes", default="2500,5000,10000", help="scene sides in pixels, comma-separated"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gsd", type=float, default=None)
    parser.add_argument("--run", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        print(json.dumps(run_one(args.run, args.out, args.workers, args.gsd)))
        return 0
    print(
        f"CPU cores usable: {len(psutil.Process().cpu_affinity() or [])}; "
        f"load average {psutil.getloadavg()[0]:.1f}",
        flush=True,
    )
    sizes = [int(v) for v in args.sizes.split(",")]
    for size, gsd in [*((n, None) for n in sizes), (max(sizes), 20.0)]:
        folder = args.cache / f"scene_{size}"
        folder.mkdir(parents=True, exist_ok=True)
        scene(folder, size)
        report(size, gsd, args.workers, measure(folder, args.workers, gsd))
    print(f"(scenes kept in {args.cache} for the next run; rm -r it to free the disk)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
