"""Connection-level limits uvicorn does not offer: a header deadline and header size caps.

BentoML starts uvicorn with a fixed set of options, and uvicorn's httptools protocol (the one
it picks when httptools is installed, as here) has no limit on header size or count and no
deadline for a request's headers: an idle or slow-header connection stays open for good, and
an 8 MiB header is read. This module extends that protocol class, once per worker at service
start, so that

- a connection must deliver each request's headers within ``header_timeout_s`` of opening
  (or of its previous response), else it is answered 408 and closed;
- more than ``max_headers`` headers or ``max_header_bytes`` of them is answered 431 and
  closed;
- uvicorn's own 400 for an unparsable request is JSON, like every other error.

A proxy in front should enforce the same (docs/deploy.md has the NGINX settings).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float
    max_header_bytes: int
    max_headers: int


class HeaderLimitExceeded(Exception):
    """Raised inside the parser callback: httptools stops and uvicorn answers the request."""


def install_connection_limits(limits: ConnectionLimits) -> bool:
    """Extend uvicorn's httptools protocol; False (a warning logged) if it is not in use."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        logger.warning("httptools is not installed: no header deadline or header size caps")
        return False
    current = getattr(HttpToolsProtocol, "_dove_limits", None)
    HttpToolsProtocol._dove_limits = limits
    if current is None:
        _extend(HttpToolsProtocol)
    return True


EXTENDED = (
    "connection_made",
    "connection_lost",
    "on_message_begin",
    "on_header",
    "on_headers_complete",
    "on_response_complete",
    "send_400_response",
)


def _extend(protocol: Any) -> None:
    """Wrap each method in ``EXTENDED`` with the same-named ``_<name>`` function below; the
    originals stay on the class as ``_dove_original``."""
    protocol._dove_original = {name: getattr(protocol, name) for name in EXTENDED}
    for name in EXTENDED:
        setattr(protocol, name, globals()[f"_{name}"])


def _original(self: Any, name: str) -> Any:
    return type(self)._dove_original[name]


def _arm(self: Any) -> None:
    """Start (or restart) the deadline for the next request's headers."""
    _disarm(self)
    self._dove_deadline = self.loop.call_later(
        self._dove_limits.header_timeout_s, _header_timeout, self
    )


def _disarm(self: Any) -> None:
    handle = getattr(self, "_dove_deadline", None)
    if handle is not None:
        handle.cancel()
        self._dove_deadline = None


def _header_timeout(self: Any) -> None:
    self._dove_deadline = None
    if not self.transport.is_closing():
        seconds = f"{self._dove_limits.header_timeout_s:g}"
        _send_error(self, 408, f"request headers not received within {seconds} s")


def _refuse(self: Any, message: str) -> None:
    self._dove_refusal = (431, message)
    raise HeaderLimitExceeded(message)


def _connection_made(self: Any, transport: Any) -> None:
    _original(self, "connection_made")(self, transport)
    _arm(self)


def _connection_lost(self: Any, exc: Exception | None) -> None:
    _disarm(self)
    _original(self, "connection_lost")(self, exc)


def _on_message_begin(self: Any) -> None:
    _original(self, "on_message_begin")(self)
    self._dove_header_bytes = 0
    self._dove_refusal = None


def _on_header(self: Any, name: bytes, value: bytes) -> None:
    _original(self, "on_header")(self, name, value)
    limits = self._dove_limits
    self._dove_header_bytes = getattr(self, "_dove_header_bytes", 0) + len(name) + len(value)
    if len(self.headers) > limits.max_headers:
        _refuse(self, f"more than {limits.max_headers} request headers")
    if self._dove_header_bytes > limits.max_header_bytes:
        _refuse(self, f"request headers are over {limits.max_header_bytes} bytes")


def _on_headers_complete(self: Any) -> None:
    _disarm(self)
    _original(self, "on_headers_complete")(self)


def _on_response_complete(self: Any) -> None:
    _original(self, "on_response_complete")(self)
    if not self.transport.is_closing():
        _arm(self)  # the next request's headers (keep-alive) get the same deadline


def _send_400_response(self: Any, msg: str) -> None:
    status, message = getattr(self, "_dove_refusal", None) or (400, msg)
    _send_error(self, status, message)


REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _send_error(protocol: Any, status: int, message: str) -> None:
    """Answer on the raw transport (no request cycle exists yet) and close the connection."""
    body = json.dumps({"error": message}).encode()
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status]),
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n\r\n",
    ]
    protocol.transport.write(b"".join(head) + body)
    protocol.transport.close()
