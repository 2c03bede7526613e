"""Every JSON-only route answers the documented codes (docs/api.md, "Errors") for a body it cannot
read: 400 `invalid_json` for an empty or malformed body, 415 `unsupported_media_type` for another
content type, 400 `invalid_request` naming the field for a body of the wrong shape. Runs on the fake
backend: the bodies are refused before any model or store is asked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from app.bootstrap import openapi_document
from tests.support.services import AUTH, make_client, settings_for

Client = TestClient  # type: ignore[type-arg]
PERSON = f"/collections/events/people/{'0' * 32}"
V = [0.1] * 512

# Each JSON-only route with a body whose field has the wrong type, that field, and a required field.
JSON_ROUTES: list[tuple[str, dict[str, Any], str, str]] = [
    ("/collections", {"name": 5}, "name", "name"),
    (f"{PERSON}/name", {"external_id": 5}, "external_id", "external_id"),
    (f"{PERSON}/merge", {"person_id": 5}, "person_id", "person_id"),
    (f"{PERSON}/split", {"face_ids": "not a list"}, "face_ids", "face_ids"),
    (f"{PERSON}/not-this-person", {"face_id": 5}, "face_id", "face_id"),
    ("/compare-faces", {"embedding_a": V, "embedding_b": V, "model_a": 5}, "model_a", "embedding_a"),
]
BAD_BODIES: list[tuple[str, bytes, str, int, str]] = [
    ("empty", b"", "application/json", 400, "invalid_json"),
    ("blank", b" \r\n", "application/json", 400, "invalid_json"),
    ("malformed", b"{not JSON", "application/json", 400, "invalid_json"),
    ("text/plain", b'{"name": "x"}', "text/plain", 415, "unsupported_media_type"),
    ("no content type", b'{"name": "x"}', "", 415, "unsupported_media_type"),
    ("multipart", b"--zz\r\n\r\n--zz--\r\n", "multipart/form-data; boundary=zz", 415, "unsupported_media_type"),
]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with make_client(settings_for("fake")) as test_client:
        assert test_client.post("/collections", headers=AUTH, json={"name": "events"}).status_code == 201
        yield test_client


def error_of(answer: Any) -> tuple[int, str | None, str | None]:
    body = answer.json()
    return answer.status_code, body.get("code"), body.get("field")


@pytest.mark.parametrize("path", [route[0] for route in JSON_ROUTES])
@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_a_body_that_cannot_be_read_gets_its_code(
    client: Client, path: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    headers = {**AUTH, "Content-Type": content_type} if content_type else AUTH
    answer = client.post(path, headers=headers, content=body)
    assert error_of(answer)[:2] == (status, code), answer.text


@pytest.mark.parametrize(("path", "body", "field", "required"), JSON_ROUTES, ids=[route[0] for route in JSON_ROUTES])
def test_a_body_of_the_wrong_shape_names_its_field(
    client: Client, path: str, body: dict[str, Any], field: str, required: str
) -> None:
    assert error_of(client.post(path, headers=AUTH, json=body)) == (400, "invalid_request", field)
    assert error_of(client.post(path, headers=AUTH, json={})) == (400, "invalid_request", required)
    assert error_of(client.post(path, headers=AUTH, json=[])) == (400, "invalid_request", None)


def test_every_json_only_route_is_covered() -> None:
    """A new JSON-only route joins JSON_ROUTES, so its bad bodies are tested too."""
    document: Any = openapi_document()
    json_only = {
        path.replace("{name}", "events").replace("{person_id}", "0" * 32)
        for path, operations in document["paths"].items()
        for operation in operations.values()
        if set(operation.get("requestBody", {}).get("content", {})) == {"application/json"}
    }
    assert json_only == {route[0] for route in JSON_ROUTES}


def test_the_openapi_document_still_describes_the_bodies() -> None:
    """The handlers read their bodies themselves; the document describes them as Litestar does a
    `data` parameter's (openapi.json_body)."""
    document: Any = openapi_document()
    merge = document["paths"]["/collections/{name}/people/{person_id}/merge"]["post"]["requestBody"]
    assert merge["required"] is True
    assert merge["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/MergePeopleRequest"}
    assert document["components"]["schemas"]["MergePeopleRequest"]["required"] == ["person_id"]
