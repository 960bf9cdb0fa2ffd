"""The service's bad-input tables, shared by the live-service tests of every model family
(tests/integration/test_service.py, test_service_dual.py): each row a request the service
must answer with a JSON 4xx, staying ready."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image


def png_bytes(
    size: tuple[int, int] = (64, 64), colour: tuple[int, int, int] = (40, 80, 160)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def decompression_bomb() -> bytes:
    """A valid, tiny PNG that declares 20000 x 20000 pixels (400 M, over every cap)."""
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, format="PNG")
    return out.getvalue()


def truncated_png() -> bytes:
    data = png_bytes((128, 128))
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    """Complete headers, random pixel data: decoding fails after the header parsed."""
    data = bytearray(png_bytes((128, 128)))
    start = data.index(b"IDAT") + 4
    data[start : start + 40] = zlib.compress(b"x")[:40].ljust(40, b"\0")
    return bytes(data)


def png_with_chunk(kind: bytes) -> bytes:
    """A PNG whose zTXt/iCCP chunk before IDAT inflates past Pillow's limit (a ValueError)."""
    data = png_bytes()
    prefix = b"Comment\0\0" if kind == b"zTXt" else b"icc\0\0"
    payload = prefix + zlib.compress(b"\0" * (2 * 1024 * 1024), 9)
    at = data.index(b"IDAT") - 4
    crc = struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    return data[:at] + struct.pack(">I", len(payload)) + kind + payload + crc + data[at:]


def raw_form(part_head: str, data: bytes = b"x", boundary: str = "bnd") -> bytes:
    return (
        f"--{boundary}\r\n{part_head}\r\n\r\n".encode() + data + f"\r\n--{boundary}--\r\n".encode()
    )


def error_text(response: Any, status: int | tuple[int, ...]) -> str:
    """Assert ``response`` (an httpx response) is a JSON error of ``status``; its message
    with BentoML's validation details."""
    expected = (status,) if isinstance(status, int) else status
    assert response.status_code in expected, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    body = body[0] if isinstance(body, list) else body
    assert body["error"]
    details = [str(item.get("msg", "")) for item in body.get("detail", [])]
    return " | ".join([str(body["error"]), *details])  # BentoML's input validation adds detail


# (payload of /search_images, error text): each a JSON 400
BAD_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"query": "", "k": 5}, "empty"),
    ({"query": "   \t\n", "k": 5}, "empty"),
    ({"query": "word " * 200, "k": 5}, "maximum is 500"),
    ({"query": "lake", "k": 0}, "between 1 and 100"),
    ({"query": "lake", "k": -3}, "between 1 and 100"),
    ({"query": "lake", "k": 101}, "between 1 and 100"),
    ({"query": "lake", "k": "ten"}, "k: Input should be a valid integer"),
    ({"query": ["lake"], "k": 5}, "query: Input should be a valid string"),
]

# ((filename, bytes, content type) uploaded to /search_texts, status, error text)
BAD_UPLOADS: list[tuple[tuple[str, bytes, str], int, str]] = [
    (("notes.txt", b"just some text", "text/plain"), 400, "content type"),
    (("fake.png", b"this is not an image at all", "image/png"), 400, "not a readable image"),
    (("half.png", truncated_png(), "image/png"), 400, "truncated or corrupt"),
    (("bomb.png", decompression_bomb(), "image/png"), 413, "pixels"),
    (("empty.png", b"", "image/png"), 400, "empty"),
]

FORM = {"Content-Type": "multipart/form-data; boundary=bnd"}
IMAGE_PART = 'Content-Disposition: form-data; name="image"; filename="a.png"'
JSON = {"Content-Type": "application/json"}
# (name, method, path, request kwargs, status, error text), table-driven (issue 11)
HOSTILE: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("png zTXt", "POST", "/search_texts",
     {"files": {"image": ("a.png", png_with_chunk(b"zTXt"), "image/png")}}, 400, "not a readable"),
    ("png iCCP", "POST", "/search_texts",
     {"files": {"image": ("a.png", png_with_chunk(b"iCCP"), "image/png")}}, 400, "not a readable"),
    ("eps", "POST", "/search_texts",
     {"files": {"image": ("a.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n", "image/png")}}, 400, "accepted"),
    ("static NUL", "GET", "/ui/static/%00", {}, 404, "no asset"),
    ("static NUL.png", "GET", "/ui/static/app.js%00.png", {}, 404, "no asset"),
    ("static long", "GET", "/ui/static/" + "a" * 5000, {}, 404, "no asset"),
    ("wrong boundary", "POST", "/search_texts",
     {"content": raw_form(IMAGE_PART, png_bytes(), "other"), "headers": FORM}, 400, "multipart"),
    ("random body", "POST", "/search_texts",
     {"content": bytes(range(256)) * 8, "headers": FORM}, 400, "multipart"),
    ("1001 fields", "POST", "/search_texts",
     {"data": {f"f{i}": "1" for i in range(1001)},
      "files": {"image": ("a.png", png_bytes(), "image/png")}}, 400, "more than"),
    ("100 KB part header", "POST", "/search_texts",
     {"content": raw_form(IMAGE_PART + "\r\nX-Pad: " + "a" * 100_000), "headers": FORM},
     400, "header"),
    ("10 KB filename", "POST", "/search_texts",
     {"files": {"image": ("a" * 10_000 + ".png", png_bytes(), "image/png")}}, 400, "multipart"),
    ("image without filename", "POST", "/search_texts",
     {"content": raw_form('Content-Disposition: form-data; name="image"', png_bytes()),
      "headers": FORM}, 400, "must be a file upload"),
    ("multipart without boundary", "POST", "/search_texts",
     {"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}}, 400, "boundary"),
    ("query of control characters", "POST", "/search_images",
     {"json": {"query": "\x01\x02\x03", "k": 3}}, 400, "empty"),
    ("query NUL", "POST", "/search_images", {"json": {"query": "\x00", "k": 3}}, 400, "empty"),
    ("query zero-width", "POST", "/search_images",
     {"json": {"query": "\u200b\u200b", "k": 3}}, 400, "empty"),
    ("query BOM", "POST", "/search_images", {"json": {"query": "\ufeff", "k": 3}}, 400, "empty"),
    ("query RTL overrides", "POST", "/search_images",
     {"json": {"query": "\u202e\u202d", "k": 3}}, 400, "empty"),
    ("query combining marks", "POST", "/search_images",
     {"json": {"query": "\u0301\u0302", "k": 3}}, 400, "no words"),
    ("k string", "POST", "/search_images",
     {"content": b'{"query": "lake", "k": "5"}', "headers": JSON},
     400, "valid integer"),
    ("k float", "POST", "/search_images",
     {"content": b'{"query": "lake", "k": 5.0}', "headers": JSON},
     400, "valid integer"),
    ("k exponent", "POST", "/search_images",
     {"content": b'{"query": "lake", "k": 1e2}', "headers": JSON},
     400, "valid integer"),
    ("k bool", "POST", "/search_images",
     {"content": b'{"query": "lake", "k": true}', "headers": JSON},
     400, "valid integer"),
    ("k float in a form", "POST", "/search_texts",
     {"files": {"image": ("a.png", png_bytes(), "image/png")}, "data": {"k": "5.0"}},
     400, "valid integer"),
    ("too many texts", "POST", "/encode_texts", {"json": {"texts": ["a lake"] * 65}}, 413, "64"),
    ("too many images", "POST", "/encode_images",
     {"files": [("images", ("a.png", png_bytes(), "image/png"))] * 17}, 413, "16"),
    ("unknown path", "GET", "/no/such/path", {}, 404, "not found"),
    ("wrong method", "GET", "/search_images", {}, 405, "use POST"),
]  # fmt: skip

BOWTIE = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]  # a self-intersecting ring
# (payload of /search_images, error text): the STAC filters and output format (issue 28),
# each a JSON 400 from any index (the values are checked before the index is searched)
BAD_GEO_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"query": "lake", "bbox": [0, 0, 1]}, "bbox: expected [west, south, east, north]"),
    ({"query": "lake", "bbox": [0, 10, 1, 5]}, "south 10 is north of north 5"),
    ({"query": "lake", "bbox": [-200, 0, 1, 1]}, "not a longitude in -180..180"),
    ({"query": "lake", "bbox": [0, 0, "1", 1]}, "every value must be a number"),
    ({"query": "lake", "bbox": "0,0,1,1"}, "bbox: Input should be a valid array"),
    ({"query": "lake", "intersects": {"type": "Polygon", "coordinates": [BOWTIE]}},
     "invalid Polygon: Self-intersection"),
    ({"query": "lake", "intersects": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}},
     "not a valid GeoJSON Polygon"),
    ({"query": "lake", "intersects": {"type": "Feature"}}, "not one of"),
    ({"query": "lake", "intersects": {"type": "Point", "coordinates": [10, 100]}},
     "[longitude, latitude]"),
    ({"query": "lake", "datetime": "2024-06-02/2024-06-01"}, "not an RFC 3339 date-time"),
    ({"query": "lake", "datetime": "2024-06-02T00:00:00Z/2024-06-01T00:00:00Z"},
     "ends before it starts"),
    ({"query": "lake", "datetime": "../.."}, "at least one end"),
    ({"query": "lake", "format": "kml"}, "'json', 'geojson' or 'stac'"),
]  # fmt: skip

# a geo filter or GeoJSON output asked of an index without geo metadata: a JSON 400
NO_GEO_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"query": "lake", "bbox": [0, 0, 1, 1]}, "no geo metadata"),
    ({"query": "lake", "datetime": "2024-06-01T00:00:00Z/.."}, "no geo metadata"),
    ({"query": "lake", "format": "geojson"}, "no geo metadata"),
    ({"query": "lake", "format": "stac"}, "no geo metadata"),
]
