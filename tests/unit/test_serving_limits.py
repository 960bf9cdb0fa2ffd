"""Input limits: each bad input is an InputError carrying the HTTP status to answer with."""

from __future__ import annotations

import pytest

from dove_model.serving.limits import (
    InputError,
    check_content_type,
    check_count,
    check_k,
    check_query,
)


def test_query_is_stripped_and_bounded() -> None:
    assert check_query("  a lake \n", 10) == "a lake"
    assert check_query("x" * 10, 10) == "x" * 10


def test_invisible_characters_are_removed_from_a_query() -> None:
    assert check_query("\ufeffa\u200blake\x00 ", 20) == "a lake"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("\x01\x02\x03", "empty"),
        ("\x00", "empty"),
        ("\u200b\u200b", "empty"),
        ("\ufeff", "empty"),
        ("\u202e\u202d", "empty"),
        ("\u0301\u0302", "no words"),
        ("123 !!", "no words"),
    ],
)
def test_a_query_without_words_is_400(query: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        check_query(query, 100)
    assert info.value.status == 400


def test_item_count_over_the_cap_is_413() -> None:
    check_count(["a"] * 3, 3, "texts")
    with pytest.raises(InputError, match="4 texts in one request; the maximum is 3") as info:
        check_count(["a"] * 4, 3, "texts")
    assert info.value.status == 413


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
