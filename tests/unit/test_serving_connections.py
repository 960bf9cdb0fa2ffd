"""Connection limits on a real uvicorn server (httptools, as BentoML runs it): a header
deadline, header count and size caps, and JSON for parser-level errors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dove_model.serving.connections import ConnectionLimits, install_connection_limits
from dove_model.serving.launch import free_port

LIMITS = ConnectionLimits(header_timeout_s=0.5, max_header_bytes=2048, max_headers=16)
RELAXED = ConnectionLimits(header_timeout_s=60, max_header_bytes=1 << 20, max_headers=1000)


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    assert install_connection_limits(LIMITS)
    port = free_port()
    config = uvicorn.Config(
        Starlette(routes=[Route("/", hello)]),
        host="127.0.0.1",
        port=port,
        http="httptools",
        lifespan="off",
        log_level="error",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)
    install_connection_limits(RELAXED)  # the class stays extended for this process


def exchange(address: tuple[str, int], data: bytes, wait: float = 0.0) -> tuple[bytes, float]:
    """Send ``data``, optionally pause, then read until the server closes: (reply, seconds)."""
    with socket.create_connection(address, timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(data)
        time.sleep(wait)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks), time.monotonic() - start


def test_a_normal_request_is_served(server: tuple[str, int]) -> None:
    reply, _ = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello")


def test_an_idle_connection_is_closed_at_the_header_deadline(server: tuple[str, int]) -> None:
    reply, seconds = exchange(server, b"")
    assert reply.startswith(b"HTTP/1.1 408") and b'"error"' in reply
    assert seconds < 5


def test_slow_headers_are_cut_at_the_deadline(server: tuple[str, int]) -> None:
    reply, seconds = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert reply.startswith(b"HTTP/1.1 408") and b"within 0.5 s" in reply
    assert seconds < 5


def test_too_many_headers_is_431(server: tuple[str, int]) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(40))
    reply, _ = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431") and b"more than 16 request headers" in reply


def test_oversized_headers_are_431(server: tuple[str, int]) -> None:
    big = b"X-Big: " + b"a" * 8192 + b"\r\n"
    reply, _ = exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431") and b"over 2048 bytes" in reply


def test_an_unparsable_request_is_a_json_400(server: tuple[str, int]) -> None:
    reply, _ = exchange(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/json" in reply.lower() and b'"error"' in reply
