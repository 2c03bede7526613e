"""The field a body's error names (adapters/wire/bodies.py): where msgspec located the fault, or the
field it missed."""

from __future__ import annotations

import msgspec
import pytest

from adapters.wire.bodies import decode_json
from domain.errors import InvalidInput


class Inner(msgspec.Struct):
    b: str


class Outer(msgspec.Struct):
    a: list[Inner]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{}", "a"),
        (b'{"a": [{"b": "x"}, {}]}', "a[1].b"),
        (b'{"a": [{"b": 1}]}', "a[0].b"),
        (b"[]", None),
    ],
)
def test_the_error_names_the_field(body: bytes, field: str | None) -> None:
    with pytest.raises(InvalidInput) as raised:
        decode_json(body, Outer)
    assert (raised.value.code, raised.value.field) == ("invalid_request", field)
