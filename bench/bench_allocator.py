"""What keeping freed memory (``dove_model/allocator.py``) buys a CPU feature pass.

    .venv/bin/python bench/bench_allocator.py [--backbone tf_efficientnet_lite2] [--size 256]
        [--images 128] [--batch 32] [--threads 2]

Runs the backbone (random weights: the arithmetic is the same) over ``--images`` random
images in batches of ``--batch``, once in a process with glibc's defaults and once in a
process that called ``retain_freed_memory`` first, and prints for each: ms an image, the CPU
time in user and kernel mode, and the peak resident size. The kernel time is the page faults
that the setting removes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(backbone: str, size: int, images: int, batch: int, retain: bool) -> dict[str, float]:
    """One process's figures (runs inside the child)."""
    import timm
    import torch

    from dove_model.allocator import retain_freed_memory

    applied = retain_freed_memory() if retain else False
    model = timm.create_model(backbone, pretrained=False, num_classes=0).eval()
    pixels = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        model(pixels)  # warm-up: first-touch and one-off kernel setup
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        for _ in range(max(1, images // batch)):
            model(pixels)
        elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    n = max(1, images // batch) * batch
    return {
        "retain_applied": applied,
        "ms_per_image": 1000 * elapsed / n,
        "user_s": after.ru_utime - before.ru_utime,
        "kernel_s": after.ru_stime - before.ru_stime,
        "page_faults": after.ru_minflt - before.ru_minflt,
        "peak_rss_mb": after.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite2")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=("default", "retain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        figures = measure(args.backbone, args.size, args.images, args.batch, args.child == "retain")
        print(json.dumps(figures))
        return
    print(
        f"{args.backbone} at {args.size} px, {args.images} images in batches of {args.batch}, "
        f"{args.threads} threads"
    )
    for mode in ("default", "retain"):
        child = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--child", mode],
            check=True,
            capture_output=True,
            text=True,
        )
        f = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"{mode:>8}: {f['ms_per_image']:6.1f} ms/image  user {f['user_s']:5.1f} s  "
            f"kernel {f['kernel_s']:5.1f} s  page faults {f['page_faults']:>9,}  "
            f"peak RSS {f['peak_rss_mb']:,.0f} MB"
        )


if __name__ == "__main__":
    main()
