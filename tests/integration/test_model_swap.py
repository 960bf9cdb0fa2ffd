"""A new champion reaches a running `bentoml serve` without a restart: `dove deploy` of
another model (imported into the BentoML store, the archive indexed with it as a new index
version) makes the service load that model from the store and swap model and index together,
while 8 clients keep searching and not one request fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dove_model.config import Params
from dove_model.model.directory import model_fingerprint
from dove_model.serving.deploy import deploy
from dove_model.serving.launch import ServiceProcess, running_service, serving_env
from dove_model.testing.deployment import (
    DemoDeployment,
    deploy_synthetic,
    load_during,
    tiny_model_dir,
    wait_for_info,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POLL_S = 0.5
QUERIES = ["a blue lake", "green farmland", "grey city roads", "yellow desert dunes"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> DemoDeployment:
    return deploy_synthetic(tmp_path_factory.mktemp("model-swap"))


@pytest.fixture(scope="module")
def service(deployed: DemoDeployment) -> Iterator[ServiceProcess]:
    root = deployed.index_dir.parent
    (root / "params.yaml").write_text(f"serve:\n  index_poll_s: {POLL_S}\n")
    env = serving_env(
        params_file=root / "params.yaml",
        model_tag=deployed.model_tag,
        index_dir=deployed.index_dir,
        bentoml_home=deployed.bentoml_home,
    )
    for name in ("DOVE_API_KEY", "DOVE_MODEL_DIR"):
        env.pop(name, None)
    with running_service(env, log_file=root / "serve.log") as proc:
        yield proc


def test_a_new_champion_is_swapped_in_under_load_without_a_failed_request(
    service: ServiceProcess, deployed: DemoDeployment, tmp_path: Path
) -> None:
    url = service.url
    before = wait_for_info(url, lambda info: True)
    assert before["model_fingerprint"] == model_fingerprint(deployed.model_dir)
    challenger = tiny_model_dir(tmp_path / "challenger", ["a lake", "a city"], seed=7)
    new_fingerprint = model_fingerprint(challenger)
    assert new_fingerprint != before["model_fingerprint"]
    published = []

    def promote_and_deploy() -> None:
        published.append(
            deploy(
                Params(),
                deployed.dataset_dir,
                model_dir=challenger,
                index_dir=deployed.index_dir,
                store_dir=deployed.bentoml_home / "models",
                progress=False,
            )
        )
        wait_for_info(url, lambda info: info["model_fingerprint"] == new_fingerprint, 60)

    results, _ = load_during(
        url, promote_and_deploy, concurrency=8, seconds=8, action_at=1.5, queries=QUERIES
    )
    statuses = [r.status for r in results]
    assert len(results) > 50 and statuses.count(200) == len(results), set(statuses)
    info = httpx.post(url + "/info", json={}).json()
    assert info["model_fingerprint"] == new_fingerprint
    assert info["model_name"] == published[0].model.tag.split(":")[0]
    assert info["index_version"] != before["index_version"] and info["index_refused"] is None
    hits = httpx.post(url + "/search_images", json={"query": "a blue lake", "k": 3}).json()
    assert len(hits["results"]) == 3
