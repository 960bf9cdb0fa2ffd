"""A strict check of a buffered multipart/form-data body before BentoML parses it.

BentoML answers a malformed form with a 500, turns a file field sent as plain text into a
URL it downloads, and writes each upload to a temporary file named after the client's file
name (a 10 KB name is an OSError). The request guard runs this check first, so each of those
becomes a JSON 400 (or 415) and BentoML only ever sees well-formed forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from dove_model.serving.limits import InputError


@dataclass(frozen=True)
class FormLimits:
    max_parts: int
    max_part_header_bytes: int
    max_filename_chars: int


@dataclass
class _Part:
    header_bytes: int = 0
    disposition: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def check_form(
    content_type: str, body: bytes, file_fields: frozenset[str], limits: FormLimits
) -> None:
    """Raise InputError unless ``body`` is a complete form whose ``file_fields`` are files."""
    media, options = parse_options_header(content_type)
    if media != b"multipart/form-data":
        names = ", ".join(sorted(file_fields))
        raise InputError(f"send {names} as a multipart/form-data file upload", 415)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InputError("multipart/form-data without a boundary")
    parts = _parse(boundary, body, limits)
    for part in parts:
        _check_part(part, file_fields, limits)


def _parse(boundary: bytes, body: bytes, limits: FormLimits) -> list[_Part]:
    parts: list[_Part] = []
    name = bytearray()
    value = bytearray()
    ended = False

    def on_part_begin() -> None:
        if len(parts) >= limits.max_parts:
            raise InputError(f"the form has more than {limits.max_parts} parts")
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        name.extend(data[start:end])
        _count(end - start)

    def on_header_value(data: bytes, start: int, end: int) -> None:
        value.extend(data[start:end])
        _count(end - start)

    def _count(size: int) -> None:
        part = parts[-1]
        part.header_bytes += size
        if part.header_bytes > limits.max_part_header_bytes:
            raise InputError(f"a form part's headers are over {limits.max_part_header_bytes} bytes")

    def on_header_end() -> None:
        key = bytes(name).strip().lower()
        parts[-1].headers.append((key, bytes(value)))
        if key == b"content-disposition":
            parts[-1].disposition = bytes(value)
        name.clear()
        value.clear()

    def on_end() -> None:
        nonlocal ended
        ended = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_end": on_end,
        },
        max_header_count=16,
        max_header_size=limits.max_part_header_bytes,
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise InputError(f"malformed multipart body ({exc})") from None
    if not ended or not parts:
        raise InputError("malformed multipart body (no complete part; wrong boundary?)")
    return parts


def _check_part(part: _Part, file_fields: frozenset[str], limits: FormLimits) -> None:
    kind, options = parse_options_header(part.disposition)
    if kind != b"form-data" or b"name" not in options:
        raise InputError("a form part has no Content-Disposition: form-data; name=...")
    name = options[b"name"].decode("utf-8", "replace")
    filename = options.get(b"filename")
    if filename is not None and len(filename) > limits.max_filename_chars:
        raise InputError(
            f"an upload's file name is {len(filename)} characters; "
            f"the maximum is {limits.max_filename_chars}"
        )
    if name in file_fields and not filename:
        raise InputError(f"form field {name!r} must be a file upload (with a filename)")
