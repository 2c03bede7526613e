"""app/cli_remote.py's HTTP rules, on a fake transport: a 503 or 429 tried again after Retry-After,
errors carried with the service's code, an import sent once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import pytest

from app import cli_remote
from app.cli_remote import Remote, RemoteError


def remote(*answers: httpx.Response) -> tuple[Remote, list[httpx.Request]]:
    sent: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        request.read()
        return queue.pop(0)

    return Remote("http://service.test/", "key-0123456789", httpx.MockTransport(handle)), sent


def busy(status: int = 503, retry_after: str = "0") -> httpx.Response:
    return httpx.Response(status, headers={"Retry-After": retry_after}, json={"error": "busy", "code": "overloaded"})


def test_a_busy_service_is_asked_again_after_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(cli_remote.time, "sleep", waits.append)
    service, sent = remote(busy(503, "2"), busy(429, "1"), httpx.Response(200, json={"collections": []}))
    assert service.call("GET", "/collections") == {"collections": []}
    assert len(sent) == 3 and waits == [2.0, 1.0]
    assert sent[0].headers["Authorization"] == "Bearer key-0123456789"
    assert str(sent[0].url) == "http://service.test/collections"


def test_it_gives_up_after_its_retries_with_the_services_error(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(cli_remote.time, "sleep", waits.append)
    service, sent = remote(*[busy(503, "600")] * (cli_remote.RETRIES + 1))
    with pytest.raises(RemoteError) as raised:
        service.call("GET", "/collections")
    assert len(sent) == cli_remote.RETRIES + 1
    assert waits == [cli_remote.LONGEST_WAIT_S] * cli_remote.RETRIES, "Retry-After is capped"
    assert (raised.value.code, raised.value.status, raised.value.reason) == ("overloaded", 503, "busy")
    assert raised.value.message == "busy (HTTP 503 overloaded)" and raised.value.stops_the_run


def test_a_503_without_retry_after_and_other_errors_are_not_retried() -> None:
    service, sent = remote(httpx.Response(503, text="upstream down"))
    with pytest.raises(RemoteError) as raised:
        service.call("GET", "/collections")
    assert len(sent) == 1 and raised.value.code == "http_error" and "upstream down" in raised.value.message
    service, sent = remote(httpx.Response(422, json={"error": "No face in the image", "code": "no_face"}))
    with pytest.raises(RemoteError) as raised:
        service.call("POST", "/collections/a/subjects/b/faces")
    assert len(sent) == 1 and not raised.value.stops_the_run


def test_an_import_is_sent_once_even_when_the_service_is_busy() -> None:
    service, sent = remote(busy(503, "0"))
    with pytest.raises(RemoteError):
        service.upload("/collections/a/import", iter([b'{"collection": 1}\n']))
    assert len(sent) == 1 and sent[0].headers["Content-Type"] == "application/x-ndjson"


def test_the_key_comes_from_the_environment() -> None:
    assert cli_remote.api_key({"FACE_SERVICE_API_KEY": "a", "API_KEY": "b"}) == "a"
    assert cli_remote.api_key({"API_KEY": "b"}) == "b"
    with pytest.raises(Exception, match="FACE_SERVICE_API_KEY or API_KEY"):
        cli_remote.api_key({"FACE_SERVICE_API_KEY": ""})


def test_enroll_sends_the_quality_floor_and_prints_a_refusals_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "dark.png").write_bytes(b"\x89PNG not decoded here")
    refusal = {"error": "The face's quality is low", "code": "low_quality_face", "reasons": ["LOW_BRIGHTNESS"]}
    service, sent = remote(httpx.Response(422, json=refusal))
    assert cli_remote.enroll_folder(service, "/collections/staff", tmp_path, False, "high") == 1
    assert sent[0].url.params["quality"] == "high" and sent[0].url.params["face"] == "one"
    (printed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (printed["code"], printed["reasons"]) == ("low_quality_face", ["LOW_BRIGHTNESS"])


@pytest.mark.parametrize("photo_id", ["..", ".", "", "a/..", "a b"])
def test_photos_delete_refuses_an_id_a_url_normaliser_would_rewrite_and_sends_nothing(
    photo_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """httpx sends `/collections/c/photos/..` as `/collections/c`: the DELETE would reach the
    collection itself. The id is refused before anything is sent; the other ids are still deleted."""
    service, sent = remote(httpx.Response(200, json={"photo_id": "ok.jpg", "deleted_faces": 1}))
    args = argparse.Namespace(verb="delete", photo_ids=[photo_id, "ok.jpg"])
    assert cli_remote.photos(service, args, "/collections/c") == 1
    assert [(request.method, request.url.path) for request in sent] == [("DELETE", "/collections/c/photos/ok.jpg")]
    refused = json.loads(capsys.readouterr().out.splitlines()[0])
    assert refused == {"photo_id": photo_id, "error": refused["error"], "code": "invalid_photo_id"}


def test_a_collection_name_or_subject_a_url_would_rewrite_is_refused_before_sending() -> None:
    with pytest.raises(RemoteError) as refused:
        cli_remote.segment("..")
    assert (refused.value.code, refused.value.status) == ("invalid_collection_name", 400)
    with pytest.raises(RemoteError) as refused:
        cli_remote.segment("..", cli_remote.checked_external_id)
    assert refused.value.code == "invalid_external_id"
    assert cli_remote.segment("u-1842@acme.com", cli_remote.checked_external_id) == "u-1842%40acme.com"
