"""Upload decoding: allowed formats only, every failure a 4xx, bounded decoded size."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from dove_model.serving.images import DecodeLimits, PixelBudget, decode_image
from dove_model.serving.limits import InputError

CAPS = DecodeLimits(max_bytes=100_000, max_pixels=1_000_000, decode_side=64)


def encoded(size: tuple[int, int] = (32, 32), mode: str = "RGB", fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, **({"color": (200, 10, 10)} if mode == "RGB" else {})).save(
        out, format=fmt, **kw
    )
    return out.getvalue()


def with_chunk(data: bytes, kind: bytes, payload: bytes) -> bytes:
    """``data`` (a PNG) with one more chunk before its first IDAT."""
    at = data.index(b"IDAT") - 4
    crc = struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    return data[:at] + struct.pack(">I", len(payload)) + kind + payload + crc + data[at:]


def test_decodes_a_valid_image_to_rgb() -> None:
    img = decode_image(encoded(mode="L"), CAPS)
    assert img.mode == "RGB" and img.size == (32, 32)


def test_over_the_byte_cap_is_413_before_decoding() -> None:
    with pytest.raises(InputError, match="bytes; the maximum is 100000") as info:
        decode_image(b"\0" * 100_001, CAPS)
    assert info.value.status == 413


def test_not_an_image_or_empty_is_400() -> None:
    for data, message in ((b"%PDF-1.4 not an image", "not a readable image"), (b"", "empty")):
        with pytest.raises(InputError, match=message) as info:
            decode_image(data, CAPS)
        assert info.value.status == 400


def test_formats_outside_the_allow_list_are_not_opened() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    for data in (eps, encoded(fmt="ICO"), encoded(fmt="PPM")):
        with pytest.raises(InputError, match="accepted: JPEG, PNG, TIFF, WEBP, GIF, BMP") as info:
            decode_image(data, CAPS)
        assert info.value.status == 400


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP", "GIF", "BMP"])
def test_every_allowed_format_decodes(fmt: str) -> None:
    assert decode_image(encoded(fmt=fmt), CAPS).size == (32, 32)


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP"])
def test_a_png_chunk_that_inflates_too_far_is_400(kind: bytes) -> None:
    """Pillow raises ValueError for these while reading the header (it was a 500)."""
    inflating = zlib.compress(b"\0" * (2 * 1024 * 1024), 9)
    prefix = b"Comment\0\0" if kind == b"zTXt" else b"icc\0\0"
    data = with_chunk(encoded(), kind, prefix + inflating)
    with pytest.raises(InputError, match="not a readable image") as info:
        decode_image(data, CAPS)
    assert info.value.status == 400


def test_truncated_image_is_400() -> None:
    data = encoded((256, 256))
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], CAPS)


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = encoded((2000, 1000), mode="1")  # 2 M pixels declared in a few hundred bytes
    assert len(bomb) < 10_000
    with pytest.raises(InputError, match="2000x1000 = 2000000 pixels") as info:
        decode_image(bomb, CAPS)
    assert info.value.status == 413


def test_huge_bomb_over_pillows_own_limit_is_413() -> None:
    bomb = encoded((20000, 20000), mode="1")  # 400 M pixels: Pillow itself refuses to open it
    with pytest.raises(InputError, match="decompression bomb") as info:
        decode_image(bomb, DecodeLimits(max_bytes=10**7, max_pixels=10**9))
    assert info.value.status == 413


@pytest.mark.parametrize(("fmt", "side"), [("JPEG", 128), ("PNG", 128), ("WEBP", 128)])
def test_large_images_are_decoded_down_to_the_decode_side(fmt: str, side: int) -> None:
    """The short side ends between decode_side and twice it; the aspect ratio is kept."""
    img = decode_image(encoded((1000, 500), fmt=fmt), DecodeLimits(10**7, 10**7, side))
    assert side <= min(img.size) < 2 * side
    assert abs(img.size[0] / img.size[1] - 2.0) < 0.05
    assert img.getpixel((5, 5))[0] > 150  # still the red picture


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to show upright
    data = encoded((40, 20), fmt="JPEG", exif=exif.tobytes())
    assert decode_image(data, CAPS).size == (20, 40)


def test_the_request_pixel_budget_is_shared_by_its_images() -> None:
    budget = PixelBudget(2500)
    decode_image(encoded((40, 40)), CAPS, budget)  # 1600 of 2500
    with pytest.raises(InputError, match="more than 2500 pixels in all") as info:
        decode_image(encoded((40, 40)), CAPS, budget)
    assert info.value.status == 413


def test_a_webp_that_needs_too_much_decoder_memory_is_413() -> None:
    """libwebp cannot decode at reduced size and needs ~15 bytes a pixel: the estimate is
    checked from the header, before any pixel is decoded."""
    data = encoded((1000, 1000), fmt="WEBP", lossless=True)
    limits = DecodeLimits(10**7, 10**7, 64, max_decode_bytes=8 * 2**20)
    with pytest.raises(InputError, match="WEBP image of 1000x1000 needs about 15 MiB") as info:
        decode_image(data, limits)
    assert info.value.status == 413
    png = encoded((1000, 1000))  # 4 MB to decode: within the same limit
    assert min(decode_image(png, limits).size) >= 64
