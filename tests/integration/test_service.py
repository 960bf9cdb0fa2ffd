"""The retrieval service under a real `bentoml serve`, for every registered family: search,
info, probes, metrics, API key and every kind of bad input (each a JSON 4xx, the server
staying healthy). A family gets this file by its line in ``families/registry.py``: DOVE on
the shared synthetic deployment, every other family's tiny profile trained on the smoke
project (``deploy_family``); what differs between families (the vector width, the re-rank,
the vocabulary) is read from the family's own encoder, never written here."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dove_model.families.dispatch import load_encoder
from dove_model.families.registry import LEGACY_FAMILY, family_names
from dove_model.model.encoding import Encoder
from dove_model.serving.launch import ServiceProcess, serving_env, start_service
from dove_model.testing.bad_input import (
    BAD_GEO_QUERIES,
    BAD_QUERIES,
    BAD_UPLOADS,
    HOSTILE,
    NO_GEO_QUERIES,
    decompression_bomb,
    png_bytes,
)
from dove_model.testing.bad_input import error_text as assert_json_error
from dove_model.testing.deployment import (
    DemoDeployment,
    deploy_family,
    serving,
    tiny_model_dir,
)

pytestmark = pytest.mark.integration
API_KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module", params=family_names())
def deployment(
    request: pytest.FixtureRequest,
    synthetic_deployment: DemoDeployment,
    tmp_path_factory: pytest.TempPathFactory,
) -> DemoDeployment:
    if request.param == LEGACY_FAMILY:
        return synthetic_deployment
    return deploy_family(tmp_path_factory.mktemp(f"{request.param}-deployment"), request.param)


@pytest.fixture(scope="module")
def encoder(deployment: DemoDeployment) -> Encoder:
    """The deployed model as the library loads it: what the service must agree with."""
    return load_encoder(deployment.model_dir)


@pytest.fixture(scope="module")
def service(
    deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One server for the module, loading the model from the BentoML store by tag."""
    with serving(deployment, tmp_path_factory.mktemp("logs") / "serve.log", API_KEY) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, headers=AUTH, timeout=60) as http:
        yield http


# --------------------------------------------------------------------------- search
def test_search_images_returns_ranked_archive_images(
    client: httpx.Client, encoder: Encoder
) -> None:
    response = client.post("/search_images", json={"query": "a blue lake", "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "a blue lake" and body["k"] == 5
    scores = [hit["score"] for hit in body["results"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    if encoder.single_stage:  # the global cosine is the whole score: no re-rank moved it
        assert all(hit["score"] == hit["candidate_score"] for hit in body["results"])
    ids = {hit["image_id"] for hit in body["results"]}
    assert len(ids) == 5
    thumb = client.get(body["results"][0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size[0] <= 160


def test_search_texts_returns_captions_for_an_upload(client: httpx.Client) -> None:
    files = {"image": ("lake.png", png_bytes(), "image/png")}
    response = client.post("/search_texts", files=files, data={"k": "3"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3 and all(hit["caption"] for hit in results)


def test_info_names_model_version_family_and_gallery_sizes(
    client: httpx.Client, deployment: DemoDeployment, encoder: Encoder
) -> None:
    info = client.post("/info", json={}).json()
    name = deployment.model_tag.split(":")[0]
    assert (info["model_name"], info["model_version"]) == (name, "local")
    assert (info["family"], info["single_stage"]) == (encoder.family, encoder.single_stage)
    manifest = pd.read_parquet(deployment.dataset_dir / "manifest.parquet")
    assert info["n_images"] == manifest["image_id"].nunique()
    assert info["n_captions"] == len(manifest)
    assert info["image_index"] == "exact"


def test_encoders_are_batchable_endpoints_and_encode_like_the_library(
    client: httpx.Client, encoder: Encoder
) -> None:
    texts = client.post("/encode_texts", json={"texts": ["a lake", "green farmland"]})
    assert texts.status_code == 200, texts.text
    vectors = np.asarray(texts.json(), np.float32)
    local = encoder.encode_texts(["a lake", "green farmland"]).t_g
    assert vectors.shape == local.shape
    # the service may run a family's towers in bfloat16 (serve.tower_precision: auto)
    cosines = (vectors * local).sum(1) / np.linalg.norm(vectors, axis=1)
    assert (cosines / np.linalg.norm(local, axis=1) > 0.98).all(), cosines
    images = client.post(
        "/encode_images", files=[("images", ("a.png", png_bytes(), "image/png"))] * 2
    )
    assert images.status_code == 200, images.text
    assert len(images.json()) == 2


def test_a_bad_request_does_not_fail_the_batch_it_would_join(client: httpx.Client) -> None:
    """Requests are validated one by one before adaptive batching merges them."""
    bodies = [{"texts": ["a lake", "a city"]}] * 6 + [{"texts": ["a lake", "   "]}]
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        responses = list(pool.map(lambda b: client.post("/encode_texts", json=b), bodies))
    assert [r.status_code for r in responses] == [200] * 6 + [400]
    assert "query is empty" in assert_json_error(responses[-1], 400)


# --------------------------------------------------------------------- probes, key
def test_health_and_metrics_need_no_key(
    service: ServiceProcess, client: httpx.Client, encoder: Encoder
) -> None:
    client.post("/search_images", json={"query": "city", "k": 3})
    for path in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(service.url + path).status_code == 200
    metrics = httpx.get(service.url + "/metrics").text
    for step in ("encode", "candidate_search", "rerank"):
        timed = f'dove_search_step_seconds_count{{direction="text_to_image",step="{step}"}}'
        assert (timed in metrics) == (step != "rerank" or not encoder.single_stage), step
    assert 'dove_search_batch_size_count{direction="text_to_image"}' in metrics


def test_api_key_protects_the_api_and_the_page(service: ServiceProcess) -> None:
    anonymous = httpx.post(service.url + "/search_images", json={"query": "lake"})
    assert "API key" in assert_json_error(anonymous, 401)
    wrong = httpx.post(service.url + "/info", json={}, headers={"Authorization": "Bearer nope"})
    assert_json_error(wrong, 401)
    assert httpx.get(service.url + "/ui/").status_code == 401
    cookie = httpx.get(service.url + "/ui/", cookies={"dove_api_key": API_KEY})
    assert cookie.status_code == 200 and "<form" in cookie.text


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(("payload", "message"), BAD_QUERIES)
def test_bad_queries_are_json_400(client: httpx.Client, payload: dict, message: str) -> None:
    assert message in assert_json_error(client.post("/search_images", json=payload), 400)


@pytest.mark.parametrize(("payload", "message"), BAD_GEO_QUERIES + NO_GEO_QUERIES)
def test_geo_filters_on_an_index_without_geo_are_json_400(
    client: httpx.Client, payload: dict, message: str
) -> None:
    """Bad STAC filters are refused by any index; good ones (and GeoJSON output) by an index
    without geo metadata (issue 28; tests/integration/test_service_geo.py has one with it)."""
    assert message in assert_json_error(client.post("/search_images", json=payload), 400)


def test_malformed_json_body_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/search_images", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_json_error(response, 400)


@pytest.mark.parametrize(("upload", "status", "message"), BAD_UPLOADS)
def test_bad_uploads_are_json_4xx(
    client: httpx.Client, upload: tuple, status: int | tuple[int, ...], message: str
) -> None:
    response = client.post("/search_texts", files={"image": upload})
    assert message in assert_json_error(response, status)


def test_upload_over_the_byte_cap_is_413(client: httpx.Client) -> None:
    too_big = b"\x89PNG" + b"\0" * (10 * 1024 * 1024 + 128 * 1024)
    response = client.post("/search_texts", files={"image": ("big.png", too_big, "image/png")})
    assert_json_error(response, 413)


def test_streamed_upload_over_the_byte_cap_is_413(client: httpx.Client) -> None:
    """Chunked transfer declares no length: the cap is enforced on the bytes that arrive."""
    boundary = "dove-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"'
        "\r\nContent-Type: image/png\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(12):
            yield b"\0" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/search_texts",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_json_error(response, 413)


def test_bomb_sent_to_the_batch_encoder_is_4xx(client: httpx.Client) -> None:
    response = client.post(
        "/encode_images", files=[("images", ("bomb.png", decompression_bomb(), "image/png"))]
    )
    assert_json_error(response, 413)  # the same status as on /search_texts


def test_a_url_is_never_fetched(client: httpx.Client) -> None:
    """A URL where an image belongs is just a string: refused, nothing is downloaded."""
    response = client.post("/search_texts", data={"image": "http://127.0.0.1:9/never.png"})
    assert_json_error(response, (400, 415))
    search = client.post("/search_images", json={"query": "http://127.0.0.1:9/x.png", "k": 2})
    assert search.status_code == 200  # treated as text, encoded, not fetched


def test_server_is_still_healthy_after_bad_input(
    service: ServiceProcess, client: httpx.Client
) -> None:
    client.post("/search_texts", files={"image": ("bomb.png", decompression_bomb(), "image/png")})
    assert httpx.get(service.url + "/readyz").status_code == 200
    assert client.post("/search_images", json={"query": "desert", "k": 2}).status_code == 200
    assert service.process.poll() is None


def test_service_refuses_an_index_built_by_another_model(
    deployment: DemoDeployment, tmp_path: Path
) -> None:
    other = tiny_model_dir(tmp_path / "other", ["a lake", "a city"], seed=1)
    # its own BENTOML_HOME: a second server on the module's home would reset the Prometheus
    # files the module's server writes its metrics to
    env = serving_env(model_dir=other, index_dir=deployment.index_dir,
                      bentoml_home=tmp_path / "bentoml")  # fmt: skip
    env.pop("DOVE_API_KEY", None)
    proc = start_service(env, log_file=tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 120
        while "index was built by" not in proc.log_tail(50_000):
            assert time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.5)
        try:
            ready = httpx.get(proc.url + "/readyz", timeout=5).status_code
        except httpx.HTTPError:
            ready = None  # no worker up: refused as well
        assert ready != 200
    finally:
        proc.stop()


def test_dove_serve_stops_the_service_on_sigterm(
    deployment: DemoDeployment, tmp_path: Path
) -> None:
    """`dove serve` (what make demo ends with) must not orphan the server when killed."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from dove_model.serving.launch import free_port

    port = free_port()
    env = serving_env(bentoml_home=tmp_path / "bentoml")  # see the test above
    env.pop("DOVE_API_KEY", None)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dove_model", "serve", "--port", str(port),
             "--model-dir", str(deployment.model_dir), "--index", str(deployment.index_dir)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "press Ctrl-C to stop" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.5)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) is not None
        deadline = time.monotonic() + 30
        while True:  # the port is released once the whole server tree is gone
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    break
            assert time.monotonic() < deadline, "the server outlived `dove serve`"
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------- hostile input, table-driven (issue 11)


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
    response = client.request(method, path, **kwargs)
    assert message in assert_json_error(response, status)
    assert httpx.get(service.url + "/readyz").status_code == 200


@pytest.mark.parametrize(
    "cookie", ["a<b=1", f"a<b=1; dove_api_key={API_KEY}"], ids=["alone", "next to the key"]
)
def test_an_unparsable_cookie_is_answered(service: ServiceProcess, cookie: str) -> None:
    response = httpx.post(service.url + "/info", json={}, headers={"Cookie": cookie}, timeout=10)
    if API_KEY in cookie:
        assert response.status_code == 200
    else:
        assert_json_error(response, 401)


def test_unknown_query_words_are_reported(client: httpx.Client, encoder: Encoder) -> None:
    """A word-level vocabulary (DOVE) names the words it does not know; a sub-word tokenizer
    knows every word."""
    response = client.post("/search_images", json={"query": "a blue zzqx lake", "k": 2})
    assert response.status_code == 200, response.text
    unknown = response.json()["unknown_words"]
    assert unknown == encoder.unknown_words("a blue zzqx lake") and unknown in ([], ["zzqx"])


def test_exif_orientation_is_applied_before_encoding(client: httpx.Client) -> None:
    """A sideways JPEG with an EXIF rotation encodes like the same picture stored upright."""
    picture = Image.new("RGB", (96, 48), (40, 80, 160))
    picture.paste((210, 180, 120), (0, 0, 48, 48))
    upright, sideways = io.BytesIO(), io.BytesIO()
    picture.save(upright, format="JPEG", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated 90 degrees clockwise: rotate back to show upright
    picture.transpose(Image.Transpose.ROTATE_270).save(
        sideways, format="JPEG", quality=95, exif=exif.tobytes()
    )
    vectors = []
    for data in (upright.getvalue(), sideways.getvalue()):
        files = [("images", ("a.jpg", data, "image/jpeg"))]
        vectors.append(client.post("/encode_images", files=files).json()[0])
    plain = Image.open(sideways).convert("RGB")  # what ignoring the EXIF tag would encode
    plain_out = io.BytesIO()
    plain.save(plain_out, format="PNG")
    ignored = client.post(
        "/encode_images", files=[("images", ("b.png", plain_out.getvalue(), "image/png"))]
    ).json()[0]

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], ignored)


def test_metrics_labels_stay_bounded(service: ServiceProcess, client: httpx.Client) -> None:
    """Random 404 paths and many thumbnail rows add no new endpoint labels."""
    for i in range(10):
        client.get(f"/random-{i}-{time.monotonic_ns()}")
        client.get(f"/ui/thumbs/{i}")
    metrics = httpx.get(service.url + "/metrics").text
    endpoints = {
        line.split('endpoint="')[1].split('"')[0]
        for line in metrics.splitlines()
        if 'endpoint="' in line
    }
    assert not any(e.startswith("/random-") for e in endpoints), endpoints
    assert not any(e.startswith("/ui/thumbs/") and e != "/ui/thumbs/{row}" for e in endpoints)
    assert "/{unmatched}" in endpoints
