"""The rules for what a collection, a subject and a face may be called or hold: full matches only
(`re.match` with `$` let "acme\n" through), no dot segments, bounded values."""

from __future__ import annotations

import pytest

from adapters.http.observability import request_id_of
from domain.errors import InvalidInput
from domain.gallery import (
    MAX_DIMENSION,
    collection_problem,
    is_collection_name,
    is_external_id,
    is_face_id,
    is_source_digest,
)
from domain.use_cases.collections import checked_external_id, checked_face_id, checked_name

FACE_ID = "0123456789abcdef0123456789abcdef"
DIGEST = "ab" * 32
MODEL = "buffalo_s:1234abcd"


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r", " ", "\x00", "\t"])
def test_every_validator_refuses_a_trailing_newline_or_blank(ending: str) -> None:
    assert is_collection_name("acme") and not is_collection_name("acme" + ending)
    assert is_external_id("u-1842") and not is_external_id("u-1842" + ending)
    assert is_face_id(FACE_ID) and not is_face_id(FACE_ID + ending)
    assert is_source_digest(DIGEST) and not is_source_digest(DIGEST + ending)
    assert collection_problem("acme", MODEL, 512, 0.4) is None
    assert collection_problem("acme" + ending, MODEL, 512, 0.4) is not None
    for checked, good in ((checked_name, "acme"), (checked_external_id, "u-1842"), (checked_face_id, FACE_ID)):
        assert checked(good) == good
        with pytest.raises(InvalidInput):
            checked(good + ending)
    request_id = "req-1"
    assert request_id_of({"type": "http", "headers": [(b"x-request-id", request_id.encode())]}) == request_id
    echoed = request_id_of({"type": "http", "headers": [(b"x-request-id", (request_id + ending).encode())]})
    assert echoed != request_id + ending and len(echoed) == 32  # a fresh id instead


@pytest.mark.parametrize("value", [".", "..", "", "a/b", "a%2Fb", "a?b", "a#b", "a\\b", "x" * 129, "émile"])
def test_external_ids_a_url_normaliser_would_rewrite_are_refused(value: str) -> None:
    assert not is_external_id(value)
    with pytest.raises(InvalidInput) as raised:
        checked_external_id(value)
    assert raised.value.code == "invalid_external_id"


@pytest.mark.parametrize("value", [".", "..", ".hidden", "", "a/b", "a%2F", "a?b", "a#b", "a\\b", "x" * 65])
def test_collection_names_a_url_normaliser_would_rewrite_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        checked_name(value)
    assert raised.value.code == "invalid_collection_name"


def test_dots_inside_an_id_are_fine() -> None:
    assert all(is_external_id(value) for value in ("...", "a.b", "jo.smith@example.com", ".a", "a.."))
    assert is_collection_name("v1.2")


@pytest.mark.parametrize(
    ("values", "fine"),
    [
        (("acme", MODEL, 512, 0.4), True),
        (("acme", MODEL, 1, -1.0), True),
        (("acme", MODEL, MAX_DIMENSION, 1), True),
        (("acme", MODEL, -5, 0.4), False),
        (("acme", MODEL, 0, 0.4), False),
        (("acme", MODEL, MAX_DIMENSION + 1, 0.4), False),
        (("acme", MODEL, 512.0, 0.4), False),
        (("acme", MODEL, True, 0.4), False),
        (("acme", MODEL, "512", 0.4), False),
        (("acme", MODEL, 512, 99), False),
        (("acme", MODEL, 512, float("nan")), False),
        (("acme", MODEL, 512, float("inf")), False),
        (("acme", MODEL, 512, "0.4"), False),
        (("acme", "", 512, 0.4), False),
        (("acme", "m" * 257, 512, 0.4), False),
        (("acme", None, 512, 0.4), False),
        ((b"acme", MODEL, 512, 0.4), False),
    ],
)
def test_collection_values(values: tuple[object, object, object, object], fine: bool) -> None:
    assert (collection_problem(*values) is None) is fine
