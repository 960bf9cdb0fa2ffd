"""Memory and slow clients against a live service: small uploads that declare huge pictures
must not cost gigabytes, and a connection that never finishes its headers is closed."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from PIL import Image

from dove_model.serving.launch import ServiceProcess, running_service, serving_env
from dove_model.testing.deployment import DemoDeployment

pytestmark = pytest.mark.integration
RSS_BOUND_MB = 300  # over the steady state, at any moment during the hostile uploads
HEADER_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def service(
    synthetic_deployment: DemoDeployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("memory")
    params = work / "params.yaml"
    params.write_text(f"serve:\n  header_timeout_s: {HEADER_TIMEOUT_S}\n")
    env = serving_env(
        params_file=params,
        model_dir=synthetic_deployment.model_dir,
        index_dir=synthetic_deployment.index_dir,
        bentoml_home=work / "bentoml",
    )
    env.pop("DOVE_API_KEY", None)
    with running_service(env, log_file=work / "serve.log") as proc:
        yield proc


def huge_but_small(fmt: str, side: int = 6300) -> bytes:
    """A few KB that declare side x side pixels (under the 40 M-pixel cap)."""
    out = io.BytesIO()
    options = {"lossless": True} if fmt == "WEBP" else {"quality": 10} if fmt == "JPEG" else {}
    Image.new("RGB", (side, side), (30, 90, 40)).save(out, format=fmt, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def uploads() -> list[tuple[str, bytes, str]]:
    return [
        ("huge.webp", huge_but_small("WEBP"), "image/webp"),
        ("huge.png", huge_but_small("PNG"), "image/png"),
        ("huge.jpg", huge_but_small("JPEG"), "image/jpeg"),
    ]


def tree_rss_mb(pid: int) -> float:
    """RSS of the server and its workers together."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


class PeakSampler:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_huge_dimension_uploads_stay_within_the_memory_bound(
    service: ServiceProcess, uploads: list[tuple[str, bytes, str]]
) -> None:
    small = io.BytesIO()
    Image.new("RGB", (256, 256), (30, 90, 40)).save(small, format="PNG")
    small_upload = ("w.png", small.getvalue(), "image/png")
    with httpx.Client(base_url=service.url, timeout=120) as client:
        # Warm up with small pictures in the same pattern (4 clients, singles then pairs):
        # concurrent forward passes allocate buffers of their own, which is not what this test
        # bounds; the growth measured is what the huge declarations add.
        with ThreadPoolExecutor(4) as pool:
            warm = list(
                pool.map(
                    lambda _: client.post("/search_texts", files={"image": small_upload}), range(8)
                )
            ) + list(
                pool.map(
                    lambda _: client.post("/encode_images", files=[("images", small_upload)] * 2),
                    range(8),
                )
            )
        assert {response.status_code for response in warm} == {200}
        steady = tree_rss_mb(service.process.pid)

        def single(i: int) -> int:
            name, data, media = uploads[i % len(uploads)]
            return client.post("/search_texts", files={"image": (name, data, media)}).status_code

        def batch(i: int) -> int:
            chosen = [uploads[(i + j) % len(uploads)] for j in range(2)]
            files = [("images", upload) for upload in chosen]
            return client.post("/encode_images", files=files).status_code

        with PeakSampler(service.process.pid) as sampler, ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(single, range(20))) + list(pool.map(batch, range(20)))
            over_budget = client.post(
                "/encode_images", files=[("images", upload) for upload in uploads]
            ).status_code
    # each is answered: PNG and JPEG with results, the WebP (about 600 MB to decode) with 413
    single_statuses, batch_statuses = statuses[:20], statuses[20:]
    assert single_statuses == [413, 200, 200] * 6 + [413, 200], single_statuses
    assert set(batch_statuses) == {200, 413}, batch_statuses
    assert over_budget == 413  # three declare 119 M pixels: over the 80 M per request
    grown = sampler.peak - steady
    print(f"server RSS steady {steady:.0f} MB, peak during the uploads +{grown:.0f} MB")
    assert grown < RSS_BOUND_MB, f"RSS grew {grown:.0f} MB over {steady:.0f} MB"
    assert httpx.get(service.url + "/readyz").status_code == 200


def test_a_slow_header_connection_is_closed(service: ServiceProcess) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
        waited = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert waited < HEADER_TIMEOUT_S + 5


def test_an_idle_connection_is_closed(service: ServiceProcess) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        start = time.monotonic()
        assert sock.recv(4096).startswith(b"HTTP/1.1 408")
        assert time.monotonic() - start < HEADER_TIMEOUT_S + 5


def test_headers_over_the_caps_are_431(service: ServiceProcess) -> None:
    many = {f"X-H{i}": "1" for i in range(100)}
    assert httpx.get(service.url + "/readyz", headers=many).status_code == 431
    big = {"X-Big": "a" * 20_000}
    response = httpx.get(service.url + "/readyz", headers=big)
    assert response.status_code == 431 and "bytes" in response.json()["error"]


def test_memory_fixture_sizes_are_what_the_issue_describes(
    uploads: list[tuple[str, bytes, str]],
) -> None:
    webp = uploads[0][1]
    assert len(webp) < 5_000
    assert Image.open(io.BytesIO(webp)).size == (6300, 6300)
