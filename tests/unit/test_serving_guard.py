"""The request guard (API key, body cap) in front of a small real ASGI app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dove_model.serving.guard import RequestGuard

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"


async def ok(request: Request) -> PlainTextResponse:
    body = await request.body()  # like an upload endpoint, read everything sent
    return PlainTextResponse(f"ok {len(body)}")


def guarded(monkeypatch: pytest.MonkeyPatch, key: str | None) -> httpx.AsyncClient:
    if key is None:
        monkeypatch.delenv("DOVE_API_KEY", raising=False)
    else:
        monkeypatch.setenv("DOVE_API_KEY", key)
    monkeypatch.setenv("DOVE_PARAMS", str(PARAMS_FILE))
    app = Starlette(
        routes=[Route(p, ok, methods=["GET", "POST"]) for p in ("/x", "/metrics", "/readyz")]
    )
    transport = httpx.ASGITransport(app=RequestGuard(app))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.anyio
async def test_no_key_configured_lets_everything_through(monkeypatch: pytest.MonkeyPatch) -> None:
    async with guarded(monkeypatch, None) as client:
        assert (await client.get("/x")).status_code == 200


@pytest.mark.anyio
async def test_key_required_except_on_probes_and_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    async with guarded(monkeypatch, "s3cret") as client:
        refused = await client.get("/x")
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
        assert (
            await client.get("/x", headers={"Authorization": "Bearer wrong"})
        ).status_code == 401
        assert (
            await client.get("/x", headers={"Authorization": "Bearer s3cret"})
        ).status_code == 200
        assert (await client.get("/x", headers={"X-API-Key": "s3cret"})).status_code == 200
        assert (
            await client.get("/x", headers={"Cookie": "dove_api_key=s3cret"})
        ).status_code == 200
        for open_path in ("/metrics", "/readyz"):
            assert (await client.get(open_path)).status_code == 200


@pytest.mark.anyio
async def test_declared_body_over_the_cap_is_413(monkeypatch: pytest.MonkeyPatch) -> None:
    async with guarded(monkeypatch, None) as client:
        big = await client.post("/x", content=b"\0" * (11 * 1024 * 1024))
        assert big.status_code == 413 and "bytes" in big.json()["error"]
        assert (await client.post("/x", content=b"small")).status_code == 200


@pytest.mark.anyio
async def test_streamed_body_without_length_is_cut_at_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def chunks():  # chunked transfer: no Content-Length header
        for _ in range(12):
            yield b"\0" * (1024 * 1024)

    async with guarded(monkeypatch, None) as client:
        streamed = await client.post("/x", content=chunks())
        assert streamed.status_code == 413 and "over" in streamed.json()["error"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
