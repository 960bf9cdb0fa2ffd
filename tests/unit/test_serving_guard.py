"""The request guard (API key, body cap and timeout, form checks, JSON errors) in front of a
small real ASGI app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from dove_model.serving.guard import RequestGuard

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"


async def ok(request: Request) -> PlainTextResponse:
    body = await request.body()  # like an upload endpoint, read everything sent
    return PlainTextResponse(f"ok {len(body)}")


async def wrapped_error(request: Request) -> JSONResponse:
    """BentoML's shape for a 4xx raised as BentoMLException: a one-element list."""
    return JSONResponse([{"error": "too many images"}], status_code=413)


def guarded(monkeypatch: pytest.MonkeyPatch, key: str | None) -> httpx.AsyncClient:
    if key is None:
        monkeypatch.delenv("DOVE_API_KEY", raising=False)
    else:
        monkeypatch.setenv("DOVE_API_KEY", key)
    monkeypatch.setenv("DOVE_PARAMS", str(PARAMS_FILE))
    app = Starlette(
        routes=[
            *(Route(p, ok, methods=["GET", "POST"]) for p in ("/x", "/metrics", "/readyz")),
            Route("/search_texts", ok, methods=["POST"]),
            Route("/wrapped", wrapped_error, methods=["POST"]),
        ]
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


@pytest.mark.anyio
async def test_an_unparsable_cookie_next_to_the_key_is_harmless(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """http.cookies raised CookieError on ``a<b=1`` (the request hung)."""
    async with guarded(monkeypatch, "s3cret") as client:
        alone = await client.get("/x", headers={"Cookie": "a<b=1"})
        assert alone.status_code == 401 and "API key" in alone.json()["error"]
        both = await client.get("/x", headers={"Cookie": "a<b=1; dove_api_key=s3cret"})
        assert both.status_code == 200


@pytest.mark.anyio
async def test_framework_errors_become_json(monkeypatch: pytest.MonkeyPatch) -> None:
    async with guarded(monkeypatch, None) as client:
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not found: /nowhere"}
        wrong_method = await client.get("/search_texts")
        assert wrong_method.status_code == 405 and "use POST" in wrong_method.json()["error"]
        wrapped = await client.post("/wrapped")
        assert wrapped.status_code == 413 and wrapped.json() == {"error": "too many images"}


def form(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MULTIPART = {"Content-Type": "multipart/form-data; boundary=b0undary"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (form([("image", "a.png", b"x")]), MULTIPART, 200, "ok"),
        (form([("image", "a.png", b"x")], "other"), MULTIPART, 400, "malformed multipart"),
        (b"\x00\xff random", MULTIPART, 400, "malformed multipart"),
        (b"abc", {"Content-Type": "multipart/form-data"}, 400, "without a boundary"),
        (form([("image", None, b"x")]), MULTIPART, 400, "must be a file upload"),
        (form([("image", "a" * 500 + ".png", b"x")]), MULTIPART, 400, "file name is 504"),
        (form([(f"f{i}", None, b"1") for i in range(1001)]), MULTIPART, 400, "more than 32"),
        (
            form([("image", "a.png", b"x")]).replace(
                b"\r\n\r\n", b"\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", 1
            ),
            MULTIPART,
            400,
            "header",
        ),
        (
            b"image=http://example.com/a.png",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "multipart",
        ),
    ],
)
async def test_upload_forms_are_checked_before_the_app(
    monkeypatch: pytest.MonkeyPatch, body: bytes, headers: dict, status: int, message: str
) -> None:
    async with guarded(monkeypatch, None) as client:
        response = await client.post("/search_texts", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert message in (response.text if status == 200 else response.json()["error"])


@pytest.mark.anyio
async def test_a_stalled_body_is_408(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("serve:\n  body_timeout_s: 0.3\n")

    async def stalled():
        yield b"start"
        import asyncio

        await asyncio.sleep(5)
        yield b"never"

    async with guarded(monkeypatch, None) as client:
        monkeypatch.setenv("DOVE_PARAMS", str(params))
        response = await client.post("/x", content=stalled())
    assert response.status_code == 408 and "0.3 s" in response.json()["error"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
