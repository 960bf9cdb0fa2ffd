"""ASGI middleware in front of the whole service: optional API key and a request-size cap.

Health, readiness and metrics stay open (probes and Prometheus carry no key). The key is
accepted as ``Authorization: Bearer <key>``, ``X-API-Key: <key>`` or the ``dove_api_key``
cookie (the web page's thumbnails are plain <img> tags, which cannot send headers).
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from dove_model.serving.settings import resolve_serving_config

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Any]
OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/metrics")
BODY_SLACK = 64 * 1024  # multipart framing and form fields around the image


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._limits: tuple[str | None, int] | None = None

    def limits(self) -> tuple[str | None, int]:
        """(api key, max body bytes), read once from the serving config on first use."""
        if self._limits is None:
            config = resolve_serving_config(os.environ)
            self._limits = (config.api_key, config.params.serve.max_upload_bytes + BODY_SLACK)
        return self._limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        api_key, max_body = self.limits()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if api_key and not _has_key(headers, api_key):
            await _reply(send, 401, "missing or wrong API key (send Authorization: Bearer KEY)")
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body:
            await _reply(send, 413, f"request body of {length} bytes is over {max_body}")
            return
        await _capped(self.app, scope, receive, send, max_body)


async def _capped(app: ASGIApp, scope: Scope, receive: Any, send: Any, max_body: int) -> None:
    """Count streamed body bytes (a chunked upload declares no length): past the cap the app
    sees a disconnect, its own answer is dropped and the client gets a 413."""
    received = 0
    over = False
    started = False

    async def counting_receive() -> dict[str, Any]:
        nonlocal received, over
        if over:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_body:
                over = True
                return {"type": "http.disconnect"}
        return message

    async def guarded_send(message: dict[str, Any]) -> None:
        nonlocal started
        if over:
            return
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, counting_receive, guarded_send)
    except Exception:
        if not over:
            raise
    if over and not started:
        await _reply(send, 413, f"request body is over {max_body} bytes")


def _has_key(headers: dict[str, str], api_key: str) -> bool:
    offered = headers.get("x-api-key", "")
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        offered = offered or auth[7:].strip()
    if not offered and "cookie" in headers:
        cookie = SimpleCookie()
        cookie.load(headers["cookie"])
        if "dove_api_key" in cookie:
            offered = cookie["dove_api_key"].value
    return bool(offered) and hmac.compare_digest(offered.encode(), api_key.encode())


async def _reply(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
