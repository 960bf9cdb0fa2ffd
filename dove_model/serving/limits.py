"""Input limits: every bad request becomes an :class:`InputError` with an HTTP status.

Images have their own module (``dove_model.serving.images``): they are checked before their
pixels are decoded.
"""

from __future__ import annotations

import unicodedata

from dove_model.errors import DoveError
from dove_model.model.tokens import tokenize


class InputError(DoveError):
    """A request the service refuses; ``status`` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_query(query: object, max_chars: int) -> str:
    """The query with control and format characters (NUL, zero-width, BOM, bidi overrides)
    removed and whitespace stripped. Empty, non-text, over-long queries, and queries with no
    word the tokenizer can read (only marks, symbols or digits) are refused."""
    if not isinstance(query, str):
        raise InputError("query must be a string")
    if len(query) > max_chars:
        raise InputError(f"query is {len(query)} characters long; the maximum is {max_chars}")
    text = "".join(" " if _invisible(ch) else ch for ch in query).strip()
    if not text:
        raise InputError("query is empty")
    if not tokenize(text):
        raise InputError("the query has no words (the model reads letters a-z)")
    return text


def _invisible(ch: str) -> bool:
    """Control (Cc), format (Cf: zero-width, BOM, bidi), and other non-printing characters."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def check_count(items: object, max_items: int, what: str) -> None:
    """A list endpoint's item cap: more items in one request is a 413."""
    count = len(items) if isinstance(items, list) else 0
    if count > max_items:
        raise InputError(f"{count} {what} in one request; the maximum is {max_items}", 413)


def check_k(k: object, max_k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise InputError("k must be an integer")
    if k < 1 or k > max_k:
        raise InputError(f"k must be between 1 and {max_k}, got {k}")
    return k


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if not media.startswith("image/"):
        raise InputError(
            f"upload has content type {media or 'none'!r}; expected an image (image/*)", 415
        )
