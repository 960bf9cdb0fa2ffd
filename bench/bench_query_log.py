"""Search latency and throughput with the query log on vs off (and with a failing log store),
through the HTTP endpoint, at concurrency 8 on a 100k-image archive (issue 29's target: p50
and QPS within 5 %). Prints, never asserts.

    .venv/bin/python bench/bench_query_log.py                       # 100k hnsw, c=8
    .venv/bin/python bench/bench_query_log.py --size 100000 --kind exact --rounds 3

The archive and model are bench_serving.py's (random unit vectors in the real on-disk format,
an untrained model of the demo architecture: real encode, FAISS search and ROAM re-rank).
Modes alternate over ``--rounds``, every other round in reverse order (off, on, failing,
failing, on, off, ...), so that drift in the shared machine's load and the order of the
service starts spread over all of them; each line is one service start.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import PROJECT_PARAMS, build_archive, make_model, run_level

from dove_model.serving.launch import serving_env, start_service


def params_file(work: Path, mode: str) -> Path:
    raw = yaml.safe_load(PROJECT_PARAMS.read_text())
    raw.setdefault("feedback", {}).setdefault("query_log", {})["enabled"] = mode != "off"
    path = work / f"params-{mode}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def one_run(work: Path, model_dir: Path, index_dir: Path, mode: str, args) -> tuple[float, ...]:
    env = serving_env(model_dir=model_dir, index_dir=index_dir, bentoml_home=work / "bentoml",
                      params_file=params_file(work, mode))  # fmt: skip
    env.pop("DOVE_API_KEY", None)
    log_dir = work / f"querylog-{mode}"
    if mode == "failing":  # a file where the folder should be: every write fails
        log_dir.write_text("not a folder")
    env["DOVE_QUERYLOG_DIR"] = str(log_dir)
    service = start_service(env, log_file=work / f"serve-{mode}.log")
    try:
        service.wait_ready(timeout=600)
        asyncio.run(run_level(service.url, args.concurrency, 80, seed=0))  # warm-up
        latencies, wall = asyncio.run(
            run_level(service.url, args.concurrency, args.requests, seed=1)
        )
    finally:
        service.stop()
    ms = np.array(latencies) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(latencies) / wall


def request_path_cost(n: int = 5000) -> float:
    """Microseconds a search spends on the log in its own request (make the record, remember
    it for /feedback, queue it), with the background writer running to a real FileStore."""
    import time

    from dove_model.feedback.files import FileStore
    from dove_model.feedback.loop import FeedbackLoop
    from dove_model.loop_params import FeedbackParams, QueryLogParams

    with tempfile.TemporaryDirectory(prefix="bench-querylog-cost-") as tmp:
        loop = FeedbackLoop(FeedbackParams(), FileStore(Path(tmp), QueryLogParams()))
        hits = [(f"img{i}", 0.5) for i in range(10)]
        start = time.perf_counter()
        for _ in range(n):
            loop.record_search("a blue lake near a road", 10, hits, ("1", "v1"), start)
        cost = (time.perf_counter() - start) / n * 1e6
        loop.close()
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--kind", default="hnsw")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["off", "on", "failing"])
    args = parser.parse_args()
    print(f"request-path cost of the log: {request_path_cost():.0f} us a search (in process)")
    with tempfile.TemporaryDirectory(prefix="bench-querylog-") as tmp:
        work = Path(tmp)
        model_dir, dim = make_model("dove", work / "model")
        index_dir = work / "index"
        build_s = build_archive(index_dir, model_dir, args.size, dim, args.kind)
        print(f"{args.size} images, {args.kind} (built in {build_s:.0f} s), c={args.concurrency}, "
              f"{args.requests} requests a run")  # fmt: skip
        print("round  mode      p50_ms  p99_ms    QPS")
        results: dict[str, list[tuple[float, ...]]] = {m: [] for m in args.modes}
        for r in range(args.rounds):
            # odd rounds run the modes backwards (off, on / on, off / ...): a mode is not
            # always the later service start, so drift and order effects cancel out
            for mode in args.modes if r % 2 == 0 else args.modes[::-1]:
                p50, p99, qps = one_run(work, model_dir, index_dir, mode, args)
                results[mode].append((p50, p99, qps))
                print(f"{r:>5}  {mode:<8} {p50:7.1f} {p99:7.1f} {qps:6.1f}", flush=True)
        base = np.median([x[0] for x in results["off"]]), np.median([x[2] for x in results["off"]])
        for mode in args.modes:
            p50 = float(np.median([x[0] for x in results[mode]]))
            qps = float(np.median([x[2] for x in results[mode]]))
            print(f"median {mode:<8} p50 {p50:6.1f} ms ({100 * (p50 / base[0] - 1):+5.1f} %)  "
                  f"QPS {qps:6.1f} ({100 * (qps / base[1] - 1):+5.1f} %)")  # fmt: skip
        logged = sum(1 for _ in (work / "querylog-on").glob("*.jsonl"))
        print(f"query log files written with the log on: {logged}")
        shutil.rmtree(index_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
