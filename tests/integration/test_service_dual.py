"""The retrieval service under a real `bentoml serve` with a dual-family champion: the same
API and limits as DOVE (the shared bad-input tables), single-stage scores, a caption index
for image -> text, and an index built by another family refused at start."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from dove_model.serving.launch import ServiceProcess, serving_env, start_service
from dove_model.testing.bad_input import BAD_QUERIES, BAD_UPLOADS, HOSTILE, error_text
from dove_model.testing.deployment import (
    DemoDeployment,
    deploy_dual_smoke,
    serving,
    tiny_model_dir,
)

pytestmark = pytest.mark.integration
API_KEY = "dual-key-456"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> DemoDeployment:
    """The dual smoke model trained (seconds), imported into a BentoML store, archive indexed."""
    import torch

    torch.set_num_threads(1)
    return deploy_dual_smoke(tmp_path_factory.mktemp("dual-deployment"))


@pytest.fixture(scope="module")
def service(
    deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    with serving(deployment, tmp_path_factory.mktemp("logs") / "serve.log", API_KEY) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, headers=AUTH, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def archive(deployment: DemoDeployment) -> pd.DataFrame:
    """One row per archive image: image_id, label, image_path and its first caption."""
    manifest = pd.read_parquet(deployment.dataset_dir / "manifest.parquet")
    return manifest.drop_duplicates("image_id").reset_index(drop=True)


def test_info_names_the_dual_family(client: httpx.Client, deployment: DemoDeployment) -> None:
    import torch

    from dove_model.model.precision import tower_dtype

    info = client.post("/info", json={}).json()
    assert info["family"] == "dual" and info["single_stage"] is True
    # serve.tower_precision is auto: bfloat16 exactly where this CPU multiplies it natively
    expected = str(tower_dtype("auto", torch.device("cpu"))).removeprefix("torch.")
    assert info["tower_precision"] == expected
    assert info["model_name"] == deployment.model_tag.split(":")[0]
    assert info["n_images"] == 48 and info["n_captions"] == 240
    assert info["image_index"] == "exact" and info["caption_index"] == "exact"


def test_text_search_is_single_stage_and_finds_the_scene(
    client: httpx.Client, archive: pd.DataFrame
) -> None:
    """Each image's own first caption as the query: the top hit's scene class matches far
    more often than chance (the sum of squared class shares, ~7% on 14 classes; 41 of 48
    when written)."""
    right = 0
    for row in archive.itertuples():
        response = client.post("/search_images", json={"query": row.caption, "k": 5})
        assert response.status_code == 200, response.text
        body = response.json()
        hits = body["results"]
        assert len(hits) == 5 and body["unknown_words"] == []
        assert all(hit["score"] == hit["candidate_score"] for hit in hits)
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        right += hits[0]["label"] == row.label
    shares = Counter(archive["label"])
    chance = sum((n / len(archive)) ** 2 for n in shares.values())
    assert right / len(archive) >= max(0.5, 3 * chance), (right, len(archive), chance)


def test_image_search_returns_captions_of_the_scene(
    client: httpx.Client, archive: pd.DataFrame, deployment: DemoDeployment
) -> None:
    label_of = dict(zip(archive["image_id"], archive["label"], strict=True))
    right = 0
    for row in archive.itertuples():
        data = (deployment.dataset_dir / row.image_path).read_bytes()
        files = {"image": ("scene.jpg", data, "image/jpeg")}
        response = client.post("/search_texts", files=files, data={"k": "3"})
        assert response.status_code == 200, response.text
        hits = response.json()["results"]
        assert len(hits) == 3 and all(hit["caption"] for hit in hits)
        assert all(hit["score"] == hit["candidate_score"] for hit in hits)
        right += label_of[hits[0]["image_id"]] == row.label
    assert right / len(archive) >= 0.4, right  # 32 of 48 when written


def test_metrics_time_no_rerank_for_a_single_stage_model(service: ServiceProcess) -> None:
    metrics = httpx.get(service.url + "/metrics").text
    assert 'dove_search_step_seconds_count{direction="text_to_image",step="encode"}' in metrics
    assert 'step="rerank"' not in metrics


@pytest.mark.parametrize(("payload", "message"), BAD_QUERIES)
def test_bad_queries_are_json_400(client: httpx.Client, payload: dict, message: str) -> None:
    assert message in error_text(client.post("/search_images", json=payload), 400)


@pytest.mark.parametrize(("upload", "status", "message"), BAD_UPLOADS)
def test_bad_uploads_are_json_4xx(
    client: httpx.Client, upload: tuple, status: int, message: str
) -> None:
    assert message in error_text(client.post("/search_texts", files={"image": upload}), status)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_input_is_a_json_4xx_and_the_service_stays_ready(
    service: ServiceProcess,
    client: httpx.Client,
    method: str,
    path: str,
    kwargs: dict,
    status: int,
    message: str,
) -> None:
    assert message in error_text(client.request(method, path, **kwargs), status)
    assert httpx.get(service.url + "/readyz").status_code == 200


def test_a_dove_model_is_refused_on_the_dual_index(
    deployment: DemoDeployment, tmp_path: Path
) -> None:
    dove = tiny_model_dir(tmp_path / "dove", ["a lake", "a city"], seed=1)
    env = serving_env(model_dir=dove, index_dir=deployment.index_dir,
                      bentoml_home=tmp_path / "bentoml")  # fmt: skip
    env.pop("DOVE_API_KEY", None)
    proc = start_service(env, log_file=tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 120
        expected = "index was built by a dual model"
        while expected not in proc.log_tail(50_000):
            assert time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.5)
        assert "but the service loaded a dove model" in proc.log_tail(50_000)
        try:
            ready = httpx.get(proc.url + "/readyz", timeout=5).status_code
        except httpx.HTTPError:
            ready = None  # no worker up: refused as well
        assert ready != 200
    finally:
        proc.stop()
