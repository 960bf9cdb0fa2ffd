"""Load and fault test on 127.0.0.1: 2,000 search requests at concurrency 16 with 50 malformed
ones mixed in. Zero 5xx, every malformed one a 4xx, /readyz healthy after, and the server's
memory not growing without bound. p50/p99 are printed, never asserted."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import httpx
import numpy as np
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dove_model.serving.launch import ServiceProcess, running_service, serving_env
from dove_model.testing.deployment import DemoDeployment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL, CONCURRENCY, MALFORMED = 2000, 16, 50
WORDS = ["blue", "lake", "green", "farmland", "city", "grey", "roads", "desert", "dunes"]


@pytest.fixture(scope="module")
def service(
    synthetic_deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    deployment = synthetic_deployment
    env = serving_env(model_dir=deployment.model_dir, index_dir=deployment.index_dir,
                      bentoml_home=deployment.bentoml_home)  # fmt: skip
    env.pop("DOVE_API_KEY", None)
    with running_service(env, log_file=tmp_path_factory.mktemp("logs") / "serve.log") as proc:
        yield proc


def malformed_requests(rng: random.Random) -> list[dict]:
    """Bad bodies of every kind the API can receive."""
    kinds = [
        {"json": {"query": "", "k": 5}},
        {"json": {"query": "lake", "k": 0}},
        {"json": {"query": "lake", "k": 1000}},
        {"json": {"query": "x" * 600, "k": 5}},
        {"json": {"query": 42, "k": "many"}},
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        {"json": ["a", "list"]},
    ]
    return [rng.choice(kinds) for _ in range(MALFORMED)]


def batch_histogram(url: str) -> tuple[float, float]:
    """(batches, queries in them) for text -> image, from the service's /metrics."""
    text = httpx.get(url + "/metrics").text
    values = {}
    for family in text_string_to_metric_families(text):
        if family.name == "dove_search_batch_size":
            for sample in family.samples:
                if sample.labels.get("direction") == "text_to_image":
                    values[sample.name.rsplit("_", 1)[-1]] = sample.value
    return values["count"], values["sum"]


def server_rss(proc: ServiceProcess) -> int:
    """Resident memory of the serve process and its workers, in bytes."""
    root = psutil.Process(proc.process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


async def fire(url: str, requests: list[tuple[bool, dict]]) -> list[tuple[bool, int, float]]:
    queue: asyncio.Queue[tuple[bool, dict]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    results: list[tuple[bool, int, float]] = []
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                bad, kwargs = queue.get_nowait()
                start = time.perf_counter()
                response = await client.post("/search_images", **kwargs)
                results.append((bad, response.status_code, time.perf_counter() - start))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return results


def test_load_with_malformed_requests(service: ServiceProcess) -> None:
    rng = random.Random(0)
    good = [
        (False, {"json": {"query": " ".join(rng.sample(WORDS, 3)), "k": rng.randint(1, 20)}})
        for _ in range(TOTAL - MALFORMED)
    ]
    requests = good + [(True, kwargs) for kwargs in malformed_requests(rng)]
    rng.shuffle(requests)

    warmup = asyncio.run(fire(service.url, requests[:200]))
    rss_after_warmup = server_rss(service)
    results = warmup + asyncio.run(fire(service.url, requests[200:]))
    rss_after = server_rss(service)

    assert len(results) == TOTAL
    statuses = [status for _, status, _ in results]
    assert not [s for s in statuses if s >= 500], "a 5xx answer"
    assert all(400 <= status < 500 for bad, status, _ in results if bad)
    assert all(status == 200 for bad, status, _ in results if not bad)
    assert httpx.get(service.url + "/readyz").status_code == 200
    growth = rss_after - rss_after_warmup
    assert growth < 200 * 2**20, f"server memory grew {growth / 2**20:.0f} MiB in 1,800 requests"
    batches, queries = batch_histogram(service.url)
    assert queries == TOTAL - MALFORMED, "each good query runs in exactly one search batch"
    assert batches < queries, "concurrent queries were never coalesced into a batch"

    latency = np.array([seconds for bad, _, seconds in results if not bad]) * 1000
    print(
        f"\nload: {TOTAL} requests at concurrency {CONCURRENCY} ({MALFORMED} malformed): "
        f"p50 {np.percentile(latency, 50):.1f} ms, p99 {np.percentile(latency, 99):.1f} ms, "
        f"server RSS {rss_after_warmup / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB, "
        f"{queries / batches:.1f} queries a search batch"
    )
