"""Input limits: every bad request becomes an :class:`InputError` with an HTTP status.

Images are checked before their pixels are decoded: byte size first, then the declared
width x height (a decompression bomb is a tiny file claiming a huge pixel count).
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from dove_model.errors import DoveError


class InputError(DoveError):
    """A request the service refuses; ``status`` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_query(query: object, max_chars: int) -> str:
    """The stripped query text; empty, non-text or over-long queries are refused."""
    if not isinstance(query, str):
        raise InputError("query must be a string")
    text = query.strip()
    if not text:
        raise InputError("query is empty")
    if len(text) > max_chars:
        raise InputError(f"query is {len(text)} characters long; the maximum is {max_chars}")
    return text


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


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode an uploaded image to RGB within the byte and pixel caps."""
    if len(data) > max_bytes:
        raise InputError(f"image is {len(data)} bytes; the maximum is {max_bytes}", 413)
    if not data:
        raise InputError("image upload is empty")
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise InputError(
            f"image declares too many pixels (a decompression bomb?); the maximum is {max_pixels}",
            413,
        ) from None
    except UnidentifiedImageError:
        raise InputError("upload is not a readable image (PNG, JPEG, TIFF, ...)") from None
    except OSError as exc:
        raise InputError(f"upload is not a readable image ({exc})") from None
    width, height = img.size
    if width * height > max_pixels:
        raise InputError(
            f"image is {width}x{height} = {width * height} pixels; the maximum is {max_pixels}",
            413,
        )
    try:
        img.load()
        return img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image is truncated or corrupt ({exc})") from None
