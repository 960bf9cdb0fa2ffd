"""The query log and ``POST /feedback`` under a real ``bentoml serve``: each search carries a
``query_id`` and is logged (the log is on disk once the writer drained it), marks are taken
with the service's API key and rate limit, bad marks are JSON 4xx (a table, like
BAD_QUERIES), and a query log whose store fails never fails a search."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

import dove_model.config  # noqa: F401  (first: testing.deployment alone has an import cycle)
from dove_model.feedback.files import FileStore
from dove_model.loop_params import QueryLogParams
from dove_model.serving.launch import ServiceProcess, running_service
from dove_model.testing.bad_input import error_text
from dove_model.testing.deployment import DemoDeployment
from dove_model.testing.feedback import feedback_env

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
API_KEY = "feedback-key-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BURST = 8


def params_file(folder: Path, **feedback: object) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["feedback"] = {**raw.get("feedback", {}), **feedback}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# (body of /feedback, status, error text); "{qid}" is a real query id of the module's search
BAD_FEEDBACK: list[tuple[dict[str, object], int, str]] = [
    ({}, 400, "query_id must be"),
    ({"query_id": "nope", "image_id": "x", "relevant": True}, 400, "query_id must be"),
    ({"query_id": 12, "image_id": "x", "relevant": True}, 400, "query_id must be"),
    ({"query_id": "0" * 32, "image_id": "x", "relevant": True}, 404, "unknown or expired"),
    ({"query_id": "{qid}", "image_id": "not-a-result", "relevant": True}, 404, "not a result"),
    ({"query_id": "{qid}", "image_id": "", "relevant": True}, 400, "image_id must be"),
    ({"query_id": "{qid}", "image_id": ["a"], "relevant": True}, 400, "image_id must be"),
    ({"query_id": "{qid}", "image_id": "{img}", "relevant": "yes"}, 400, "relevant must be"),
    ({"query_id": "{qid}", "image_id": "{img}", "relevant": 1}, 400, "relevant must be"),
    ({"query_id": "{qid}", "image_id": "{img}"}, 400, "relevant must be"),
]


def start(deployment: DemoDeployment, folder: Path, log_dir: Path, **feedback: object):
    params = params_file(folder, **feedback)
    env = feedback_env(deployment, log_dir, api_key=API_KEY, params_file=params)
    return running_service(env, log_file=folder / "serve.log")


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("querylog")


@pytest.fixture(scope="module")
def service(
    synthetic_deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("feedback-service")
    with start(synthetic_deployment, folder, log_dir, rate_burst=BURST, rate_per_minute=1) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, headers=AUTH, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def first_search(client: httpx.Client) -> dict:
    response = client.post("/search_images", json={"query": "a blue lake", "k": 5})
    assert response.status_code == 200, response.text
    return response.json()


def logged(log_dir: Path, query_id: str, attempts: int = 100) -> list:
    """The log's records of ``query_id`` once the background writer wrote them."""
    store = FileStore(log_dir, QueryLogParams())
    for _ in range(attempts):
        found = [q for q in store.queries() if q.query_id == query_id]
        if found:
            return found
        time.sleep(0.1)
    return []


def test_each_search_carries_a_query_id_and_is_logged(first_search: dict, log_dir: Path) -> None:
    query_id = first_search["query_id"]
    assert len(query_id) == 32
    (record,) = logged(log_dir, query_id)
    assert record.text == "a blue lake" and record.k == 5
    assert record.image_ids == [hit["image_id"] for hit in first_search["results"]]
    assert record.scores == pytest.approx([h["score"] for h in first_search["results"]], abs=1e-6)
    assert record.model_version == "local" and record.latency_ms > 0


def test_a_mark_is_taken_and_logged(
    client: httpx.Client, first_search: dict, log_dir: Path
) -> None:
    image_id = first_search["results"][1]["image_id"]
    body = {"query_id": first_search["query_id"], "image_id": image_id, "relevant": True}
    response = client.post("/feedback", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["rank"] == 2 and response.json()["relevant"] is True
    store = FileStore(log_dir, QueryLogParams())
    for _ in range(100):
        if [f for f in store.feedback() if f.query_id == first_search["query_id"]]:
            break
        time.sleep(0.1)
    (mark,) = [f for f in store.feedback() if f.query_id == first_search["query_id"]]
    assert (mark.image_id, mark.relevant, mark.rank) == (image_id, True, 2)


def test_feedback_needs_the_api_key(service: ServiceProcess, first_search: dict) -> None:
    body = {"query_id": first_search["query_id"], "image_id": "x", "relevant": True}
    assert "API key" in error_text(httpx.post(service.url + "/feedback", json=body), 401)


@pytest.mark.parametrize(("body", "status", "message"), BAD_FEEDBACK)
def test_bad_feedback_is_a_json_4xx(
    client: httpx.Client, first_search: dict, body: dict, status: int, message: str
) -> None:
    values = {"{qid}": first_search["query_id"], "{img}": first_search["results"][0]["image_id"]}
    sent = {key: values.get(v, v) if isinstance(v, str) else v for key, v in body.items()}
    assert message in error_text(client.post("/feedback", json=sent), status)


def test_metrics_count_marks_and_log_records(service: ServiceProcess, client: httpx.Client) -> None:
    hit = client.post("/search_images", json={"query": "a river", "k": 2}).json()
    body = {"query_id": hit["query_id"], "image_id": hit["results"][0]["image_id"]}
    assert client.post("/feedback", json={**body, "relevant": True}).status_code == 200
    metrics = httpx.get(service.url + "/metrics").text
    assert 'dove_feedback_marks_total{relevant="true"}' in metrics
    assert 'dove_querylog_records_total{outcome="written"}' in metrics
    assert 'dove_feedback_search_share{model_version="local"}' in metrics
    assert 'dove_feedback_precision_at_k{model_version="local"}' in metrics


def test_marks_past_the_rate_limit_are_429(client: httpx.Client) -> None:
    """Last in the module: it spends the client's bucket (BURST, one token a minute)."""
    search = client.post("/search_images", json={"query": "farmland", "k": 3}).json()
    body = {"query_id": search["query_id"], "image_id": search["results"][0]["image_id"]}
    codes = [client.post("/feedback", json={**body, "relevant": True}).status_code]
    codes += [
        client.post("/feedback", json={**body, "relevant": True}).status_code for _ in range(BURST)
    ]
    assert codes[-1] == 429 and 200 in codes
    assert "slow down" in error_text(client.post("/feedback", json={**body, "relevant": True}), 429)


def test_a_failing_log_store_never_fails_a_search(
    synthetic_deployment: DemoDeployment, tmp_path: Path
) -> None:
    """The log folder is a file: every write fails; searches and marks still answer."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    with start(synthetic_deployment, tmp_path, blocked) as proc:
        failed = search_and_mark(proc)
    assert failed >= 4  # every record was lost to the store, none to a request
    assert "query log store failed" in (tmp_path / "serve.log").read_text()


def search_and_mark(proc: ServiceProcess) -> float:
    """Three searches and a mark, each answered; the records the store lost."""
    with httpx.Client(base_url=proc.url, headers=AUTH, timeout=60) as http:
        for query in ("a lake", "a road", "green farmland"):
            response = http.post("/search_images", json={"query": query, "k": 3})
            assert response.status_code == 200, response.text
        hit = response.json()
        body = {"query_id": hit["query_id"], "image_id": hit["results"][0]["image_id"]}
        assert http.post("/feedback", json={**body, "relevant": False}).status_code == 200
        failed = 0.0
        for _ in range(100):
            failed = _counter(http.get("/metrics").text, "failed")
            if failed >= 4:
                break
            time.sleep(0.1)
    return failed


def _counter(metrics: str, outcome: str) -> float:
    line = f'dove_querylog_records_total{{outcome="{outcome}"}}'
    for row in metrics.splitlines():
        if row.startswith(line):
            return float(row.split()[-1])
    return 0.0


def test_records_still_queued_are_written_when_the_service_stops(
    synthetic_deployment: DemoDeployment, tmp_path: Path
) -> None:
    """The writer batches for ``linger_s``; a clean stop (SIGTERM) writes what is queued."""
    log_dir = tmp_path / "log"
    with start(synthetic_deployment, tmp_path, log_dir, query_log={"linger_s": 30}) as proc:
        with httpx.Client(base_url=proc.url, headers=AUTH, timeout=60) as http:
            ids = [
                http.post("/search_images", json={"query": q, "k": 2}).json()["query_id"]
                for q in ("a lake", "a forest", "a harbour")
            ]
        assert FileStore(log_dir, QueryLogParams()).queries() == []  # still queued
    logged = {q.query_id for q in FileStore(log_dir, QueryLogParams()).queries()}
    assert set(ids) <= logged
