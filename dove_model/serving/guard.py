"""ASGI middleware in front of the whole service: API key, body caps and timeouts, form checks,
and JSON error bodies.

Health, readiness and metrics stay open (probes and Prometheus carry no key). The key is
accepted as ``Authorization: Bearer <key>``, ``X-API-Key: <key>`` or the ``dove_api_key``
cookie (the web page's thumbnails are plain <img> tags, which cannot send headers).

Every error leaves as ``{"error": "..."}``: BentoML's and Starlette's own 404/405 pages are
plain text and BentoML wraps some 4xx bodies in a one-element list, so error responses from
the app are rewritten here. File uploads are buffered (within the byte cap) and their form is
checked before BentoML parses it (``dove_model.serving.multipart``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from dove_model.serving.limits import InputError
from dove_model.serving.metrics import REAL_PATH_KEY
from dove_model.serving.multipart import FormLimits, check_form
from dove_model.serving.settings import resolve_serving_config

Scope = MutableMapping[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Any]
OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/metrics")
BODY_SLACK = 64 * 1024  # multipart framing and form fields around the image
FILE_FIELDS = {"/search_texts": frozenset({"image"}), "/encode_images": frozenset({"images"})}
API_KEY_COOKIE = "dove_api_key"


@dataclass(frozen=True)
class GuardLimits:
    api_key: str | None
    max_body: int
    body_timeout_s: float
    form: FormLimits


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._limits: GuardLimits | None = None

    def limits(self) -> GuardLimits:
        """Read once from the serving config on first use (never at import)."""
        if self._limits is None:
            config = resolve_serving_config(os.environ)
            serve = config.params.serve
            self._limits = GuardLimits(
                api_key=config.api_key,
                max_body=serve.max_upload_bytes + BODY_SLACK,
                body_timeout_s=serve.body_timeout_s,
                form=FormLimits(
                    max_parts=serve.max_form_parts,
                    max_part_header_bytes=serve.max_part_header_bytes,
                    max_filename_chars=serve.max_filename_chars,
                ),
            )
        return self._limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if REAL_PATH_KEY in scope:  # the metrics label was bounded: route on the real path
            scope = {**scope, "path": scope[REAL_PATH_KEY]}
        if scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        send = _json_errors(scope, send)
        try:
            await self._guarded(scope, receive, send)
        except InputError as exc:
            await _reply(send, exc.status, str(exc))

    async def _guarded(self, scope: Scope, receive: Any, send: Any) -> None:
        limits = self.limits()
        headers = _headers(scope)
        if limits.api_key and not _has_key(headers, limits.api_key):
            raise InputError("missing or wrong API key (send Authorization: Bearer KEY)", 401)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_body:
            raise InputError(f"request body of {length} bytes is over {limits.max_body}", 413)
        body = _Body(receive, limits.max_body, limits.body_timeout_s)
        file_fields = FILE_FIELDS.get(scope["path"])
        if file_fields is not None and scope["method"] == "POST":
            data = await body.read_all()
            check_form(headers.get("content-type", ""), data, file_fields, limits.form)
            await self.app(scope, _replay(data, receive), send)
            return
        await _capped(self.app, scope, body, send)


class _Body:
    """The request body within the byte cap, each chunk within the timeout."""

    def __init__(self, receive: Any, max_body: int, timeout_s: float) -> None:
        self.receive = receive
        self.max_body = max_body
        self.timeout_s = timeout_s
        self.received = 0
        self.complete = False

    async def next(self) -> Message:
        """The next message; raises InputError (413, 408) past the cap or the timeout."""
        if self.complete:
            return await self.receive()  # after the body: the app waits for a disconnect
        try:
            message = await asyncio.wait_for(self.receive(), self.timeout_s)
        except TimeoutError:
            raise InputError(f"no request body received for {self.timeout_s:g} s", 408) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_body:
                raise InputError(f"request body is over {self.max_body} bytes", 413)
            self.complete = not message.get("more_body", False)
        return message

    async def read_all(self) -> bytes:
        chunks: list[bytes] = []
        while not self.complete:
            message = await self.next()
            if message["type"] == "http.disconnect":
                raise InputError("the client disconnected before sending the body")
            chunks.append(message.get("body", b""))
        return b"".join(chunks)


def _replay(data: bytes, receive: Any) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await receive()

    return replay


async def _capped(app: ASGIApp, scope: Scope, body: _Body, send: Any) -> None:
    """Stream the body to the app (a chunked upload declares no length). Past the cap or the
    timeout the app sees a disconnect, its own answer is dropped and the client gets the
    413 or 408."""
    refused: InputError | None = None
    started = False

    async def counting_receive() -> Message:
        nonlocal refused
        if refused is not None:
            return {"type": "http.disconnect"}
        try:
            return await body.next()
        except InputError as exc:
            refused = exc
            return {"type": "http.disconnect"}

    async def guarded_send(message: Message) -> None:
        nonlocal started
        if refused is not None:
            return
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(scope, counting_receive, guarded_send)
    except Exception:
        if refused is None:
            raise
    if refused is not None and not started:
        raise refused


def _json_errors(scope: Scope, send: Any) -> Callable[[Message], Awaitable[None]]:
    """Rewrite error responses that are not ``{"error": ...}`` JSON (buffered: they are small)."""
    held: Message | None = None
    chunks: list[bytes] = []

    async def json_send(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] >= 400:
            held = message
            return
        if held is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, held = held, None
        status = start["status"]
        content_type = _header(start["headers"], b"content-type")
        body = _error_body(scope, status, content_type, b"".join(chunks))
        await _reply(send, status, body, headers=_kept_headers(start["headers"]))

    return json_send


def _error_body(scope: Scope, status: int, content_type: str, body: bytes) -> str:
    """The error message of an app's error response, whatever shape it came in."""
    if content_type.startswith("application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, list) and len(data) == 1:
            data = data[0]  # BentoML wraps 4xx errors raised as BentoMLException in a list
        if isinstance(data, dict):
            if isinstance(data.get("detail"), list) and data["detail"]:
                return _validation_message(data["detail"])  # BentoML's pydantic errors
            if "error" in data:
                return str(data["error"])
            if "detail" in data:
                return str(data["detail"])  # FastAPI / Starlette HTTPException
    if status == 404:
        return f"not found: {scope['path'][:200]}"
    if status == 405:
        return f"method {scope['method']} is not allowed on {scope['path'][:200]} (use POST)"
    text = body.decode("utf-8", "replace").strip()
    return text[:500] or HTTPStatus(status).phrase


def _validation_message(details: list[Any]) -> str:
    """``k: Input should be a valid integer`` from pydantic's error list."""
    parts = []
    for item in details[:3]:
        if isinstance(item, dict):
            where = ".".join(str(p) for p in item.get("loc", ()))
            parts.append(f"{where}: {item.get('msg', 'invalid')}" if where else str(item))
    return "invalid request: " + "; ".join(parts)


def _kept_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    dropped = (b"content-type", b"content-length")
    return [(k, v) for k, v in headers if k.lower() not in dropped]


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").lower()
    return ""


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _has_key(headers: dict[str, str], api_key: str) -> bool:
    offered = headers.get("x-api-key", "")
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        offered = offered or auth[7:].strip()
    if not offered:
        offered = _cookie(headers.get("cookie", ""), API_KEY_COOKIE)
    return bool(offered) and hmac.compare_digest(offered.encode(), api_key.encode())


def _cookie(header: str, name: str) -> str:
    """One cookie's value. Parsed by hand: ``http.cookies`` rejects a whole header (or worse)
    for one cookie it does not like (``a<b=1``), and browsers send such cookies."""
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return ""


async def _reply(
    send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *(headers or []),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
