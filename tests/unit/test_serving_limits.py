"""Input limits: each bad input is an InputError carrying the HTTP status to answer with."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from dove_model.serving.limits import (
    InputError,
    check_content_type,
    check_k,
    check_query,
    decode_image,
)

CAPS = {"max_bytes": 100_000, "max_pixels": 1_000_000}


def png(size: tuple[int, int] = (32, 32), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format="PNG")
    return out.getvalue()


def test_query_is_stripped_and_bounded() -> None:
    assert check_query("  a lake \n", 10) == "a lake"
    assert check_query("x" * 10, 10) == "x" * 10


@pytest.mark.parametrize(
    ("query", "message"),
    [("", "empty"), (" \t\n ", "empty"), ("x" * 11, "maximum is 10"), (None, "must be a string")],
)
def test_bad_queries(query: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        check_query(query, 10)
    assert info.value.status == 400


@pytest.mark.parametrize("k", [0, -1, 101, True, 2.5, "3"])
def test_bad_k(k: object) -> None:
    with pytest.raises(InputError) as info:
        check_k(k, 100)
    assert info.value.status == 400


def test_good_k() -> None:
    assert check_k(1, 100) == 1 and check_k(100, 100) == 100


def test_content_type_must_be_an_image() -> None:
    check_content_type("image/png")
    check_content_type("image/jpeg; charset=binary")
    for wrong in ("text/plain", "application/octet-stream", None):
        with pytest.raises(InputError) as info:
            check_content_type(wrong)
        assert info.value.status == 415


def test_decodes_a_valid_image_to_rgb() -> None:
    img = decode_image(png(mode="L"), **CAPS)
    assert img.mode == "RGB" and img.size == (32, 32)


def test_over_the_byte_cap_is_413_before_decoding() -> None:
    with pytest.raises(InputError, match="bytes; the maximum is 100000") as info:
        decode_image(b"\0" * 100_001, **CAPS)
    assert info.value.status == 413


def test_not_an_image_or_empty_is_400() -> None:
    for data, message in ((b"%PDF-1.4 not an image", "not a readable image"), (b"", "empty")):
        with pytest.raises(InputError, match=message) as info:
            decode_image(data, **CAPS)
        assert info.value.status == 400


def test_truncated_image_is_400() -> None:
    data = png((256, 256))
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], **CAPS)


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png((2000, 1000), mode="1")  # 2 M pixels declared in a few hundred bytes
    assert len(bomb) < 10_000
    with pytest.raises(InputError, match="2000x1000 = 2000000 pixels") as info:
        decode_image(bomb, **CAPS)
    assert info.value.status == 413


def test_huge_bomb_over_pillows_own_limit_is_413() -> None:
    bomb = png((20000, 20000), mode="1")  # 400 M pixels: Pillow itself refuses to open it
    with pytest.raises(InputError, match="decompression bomb") as info:
        decode_image(bomb, max_bytes=10**7, max_pixels=10**9)
    assert info.value.status == 413
