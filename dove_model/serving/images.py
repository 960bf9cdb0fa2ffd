"""Decoding uploaded images with bounded memory.

A small file can declare a huge picture (a 1.5 KB lossless WebP of 6300 x 6300 decodes to
119 MB), so an upload is checked before its pixels are decoded: byte size, then the declared
width x height against the per-image cap and the request's remaining pixel budget. Only an
allow-list of formats is opened (Pillow would otherwise try all of its plug-ins, EPS
included). Decoding then happens at reduced size where the format allows it (JPEG draft
mode) and the result is reduced at once by an integer factor (``Image.reduce``) so that the
short side stays at least ``decode_side`` pixels: the model resizes to a few hundred pixels
anyway. A format whose decoder cannot scale and needs much more memory than the picture
(libwebp: about 15 bytes a pixel) is refused (413) above an estimated decoder memory, so
the cap on pixels is not a cap of 600 MB per upload. Large decodes run one at a time (a
process-wide semaphore) and hand their memory back to the OS afterwards (``malloc_trim``), so
a burst of them cannot stack up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import threading
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, UnidentifiedImageError

from dove_model.serving.limits import InputError

ALLOWED_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "GIF", "BMP")
LARGE_DECODE_PIXELS = 4_000_000  # above this, decodes are serialised and memory trimmed
_large_decodes = threading.BoundedSemaphore(1)
REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F")
ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose;
# applied after the reduction, which drops the format-specific tags it would read)
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# Peak decoder memory per decoded pixel, measured with Pillow 12 (RGB pictures):
# libwebp's decoder holds RGBA canvases and Pillow copies them (about 15 bytes a pixel); the
# others hold the picture plus its RGB conversion. JPEG is estimated after draft scaling.
DECODE_BYTES_PER_PIXEL = {"WEBP": 16, "GIF": 5}
DEFAULT_BYTES_PER_PIXEL = 4


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int
    max_pixels: int  # per image, as declared in its header
    decode_side: int = 1024  # decode down to no less than this short side
    max_decode_bytes: int = 200 * 2**20  # estimated decoder memory for one image


class PixelBudget:
    """Declared pixels a request may still decode (several images share one budget)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total
        self._lock = threading.Lock()

    def take(self, pixels: int) -> None:
        with self._lock:
            if pixels > self.left:
                raise InputError(
                    f"the request's images declare more than {self.total} pixels in all", 413
                )
            self.left -= pixels


def decode_image(
    data: bytes, limits: DecodeLimits, budget: PixelBudget | None = None
) -> Image.Image:
    """An RGB picture, EXIF-oriented, short side reduced to about ``decode_side``."""
    if len(data) > limits.max_bytes:
        raise InputError(f"image is {len(data)} bytes; the maximum is {limits.max_bytes}", 413)
    if not data:
        raise InputError("image upload is empty")
    img = _open(data, limits.max_pixels)
    width, height = img.size
    pixels = width * height
    if pixels > limits.max_pixels:
        raise InputError(
            f"image is {width}x{height} = {pixels} pixels; the maximum is {limits.max_pixels}",
            413,
        )
    if budget is not None:
        budget.take(pixels)
    if img.format == "JPEG":
        img.draft("RGB", (limits.decode_side, limits.decode_side))  # DCT scaling, header only
    _check_decode_memory(img, limits.max_decode_bytes)
    if pixels <= LARGE_DECODE_PIXELS:
        return _decode(img, limits.decode_side)
    with _large_decodes:
        try:
            return _decode(img, limits.decode_side)
        finally:
            del img
            release_freed_memory()


def _check_decode_memory(img: Image.Image, max_decode_bytes: int) -> None:
    width, height = img.size  # after draft scaling for JPEG
    per_pixel = DECODE_BYTES_PER_PIXEL.get(str(img.format), DEFAULT_BYTES_PER_PIXEL)
    estimate = width * height * per_pixel
    if estimate > max_decode_bytes:
        raise InputError(
            f"a {img.format} image of {width}x{height} needs about {estimate >> 20} MiB to "
            f"decode; the maximum is {max_decode_bytes >> 20} MiB (send it smaller, or as JPEG)",
            413,
        )


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only, with the allowed formats; every failure is a 4xx."""
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise InputError(
            f"image declares too many pixels (a decompression bomb?); the maximum is {max_pixels}",
            413,
        ) from None
    except UnidentifiedImageError:
        kinds = ", ".join(ALLOWED_FORMATS)
        raise InputError(f"upload is not a readable image (accepted: {kinds})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # e.g. a PNG text or ICC chunk that is not valid zlib, or decompresses too far
        raise InputError(f"upload is not a readable image ({exc})") from None


def _decode(img: Image.Image, decode_side: int) -> Image.Image:
    try:
        orientation = img.getexif().get(ORIENTATION_TAG, 1)
        img.load()
        factor = min(img.size) // decode_side
        if factor >= 2:
            if img.mode not in REDUCIBLE_MODES:
                img = img.convert("RGB")
            img = img.reduce(factor)
        img = img.convert("RGB")
        transpose = EXIF_TRANSPOSE.get(orientation)
        return img.transpose(transpose) if transpose is not None else img
    except Image.DecompressionBombError:
        raise InputError("image decodes to too many pixels", 413) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise InputError(f"image is truncated or corrupt ({exc})") from None


def release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc keeps them otherwise); a no-op elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
