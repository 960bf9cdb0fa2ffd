"""Live index swap under a real `bentoml serve`: while 8 clients keep searching, a new index
version is published (pointer flipped); not one request fails, /info names the new version
within a few polls and results come from the new archive. A broken version published after it
is refused, reported on /info and /metrics, and the old one keeps serving."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from dove_model.config import Params
from dove_model.index.build import build_index
from dove_model.index.versions import read_pointer
from dove_model.serving.launch import ServiceProcess, running_service, serving_env
from dove_model.testing.deployment import (
    DemoDeployment,
    load_during,
    publish_index_copy,
    synthetic_dataset,
    wait_for_info,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POLL_S = 0.5
QUERIES = ["a blue lake", "green farmland", "grey city roads", "yellow desert dunes"]


@pytest.fixture(scope="module")
def work(synthetic_deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A private copy of the deployed (versioned) index root, and a second index folder built
    by the same model over a larger archive (8 images a scene instead of 6)."""
    root = tmp_path_factory.mktemp("swap")
    index = shutil.copytree(synthetic_deployment.index_dir, root / "index")
    grown = synthetic_dataset(root / "grown", per_scene=8)
    staged = build_index(synthetic_deployment.model_dir, grown, Params(), root / "staged",
                         progress=False)  # fmt: skip
    (root / "params.yaml").write_text(f"serve:\n  index_poll_s: {POLL_S}\n")
    return {"root": root, "index": index, "staged": staged}


@pytest.fixture(scope="module")
def service(synthetic_deployment: DemoDeployment, work: dict) -> Iterator[ServiceProcess]:
    env = serving_env(
        params_file=work["root"] / "params.yaml",
        model_dir=synthetic_deployment.model_dir,
        index_dir=work["index"],
        bentoml_home=work["root"] / "bentoml",
    )
    env.pop("DOVE_API_KEY", None)
    with running_service(env, log_file=work["root"] / "serve.log") as proc:
        yield proc


def swap_counts(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        if family.name == "dove_index_swaps":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["outcome"]] = sample.value
    return counts


def test_a_new_version_is_swapped_in_under_load_without_a_failed_request(
    service: ServiceProcess, work: dict
) -> None:
    url = service.url
    before = wait_for_info(url, lambda info: True)
    assert before["index_version"] == read_pointer(work["index"]) and before["n_images"] == 24
    published: list[str] = []

    def swap() -> None:
        published.append(publish_index_copy(work["index"], work["staged"]))
        wait_for_info(url, lambda info: info["index_version"] == published[0], 8 * POLL_S + 5)

    results, _ = load_during(url, swap, concurrency=8, seconds=6, action_at=1.5, queries=QUERIES)
    statuses = [r.status for r in results]
    assert len(results) > 50 and statuses.count(200) == len(results), (
        f"{len(results) - statuses.count(200)} failed requests: {set(statuses)}"
    )
    info = httpx.post(url + "/info", json={}).json()
    assert info["index_version"] == published[0] and info["n_images"] == 32
    assert info["index_refused"] is None
    hits = httpx.post(url + "/search_images", json={"query": "a blue lake", "k": 32}).json()
    ids = {hit["image_id"] for hit in hits["results"]}
    assert {"lake_7", "city_6", "desert_7"} <= ids  # only in the new archive
    new_only = next(h for h in hits["results"] if h["image_id"] == "lake_7")
    assert httpx.get(url + new_only["thumbnail_url"]).status_code == 200
    latency = np.array([r.seconds for r in results]) * 1000
    p50, p99 = np.percentile(latency, [50, 99])
    print(f"\nswap under load: {len(results)} requests at c=8, 0 failed, p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms")  # fmt: skip


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(
    service: ServiceProcess, work: dict
) -> None:
    url = service.url
    serving = wait_for_info(url, lambda info: True)["index_version"]
    current = work["index"] / "versions" / serving
    broken = publish_index_copy(work["index"], current, truncate_faiss=True)
    info = wait_for_info(
        url, lambda info: (info["index_refused"] or {}).get("version") == broken, 8 * POLL_S + 5
    )
    assert info["index_version"] == serving
    assert "images.faiss" in info["index_refused"]["reason"]
    hits = httpx.post(url + "/search_images", json={"query": "a blue lake", "k": 5})
    assert hits.status_code == 200 and len(hits.json()["results"]) == 5
    assert swap_counts(url) == {"swapped": 1.0, "refused": 1.0}  # tried once, not every poll
    assert httpx.get(url + "/readyz").status_code == 200
