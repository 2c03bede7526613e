"""app/cli_remote.py's HTTP rules, on a fake transport: a 503 or 429 tried again after Retry-After,
errors carried with the service's code, an import sent once."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import httpx
import pytest

from app import cli_remote
from app.cli_remote import Remote, RemoteError


@pytest.fixture(autouse=True)
def no_log_handlers_left_by_other_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that run `face-service` in-process configure the root logger with a handler on the
    stderr pytest captured for them (closed since): httpx's request lines would then land in this
    module's captured stderr as logging errors. These tests read stderr, so they start without."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


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
    assert len(sent) == 3 and len(waits) == 2
    assert 2.0 <= waits[0] <= 3.0, "Retry-After at least, and up to half as long again"
    assert 1.0 <= waits[1] <= 1.5, "the second wait: a second at least (doubling from half a second)"
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
    assert raised.value.message == "busy (HTTP 503 overloaded)"
    assert not raised.value.stops_the_run, "a service still busy fails the item; a run goes on"


def test_retries_back_off_and_spread_so_refused_threads_do_not_return_together() -> None:
    waits = [[cli_remote.retry_wait(attempt, 0.0) for attempt in range(cli_remote.RETRIES)] for _ in range(20)]
    for run in waits:
        assert all(0.5 * 2**attempt <= wait <= 0.75 * 2**attempt for attempt, wait in enumerate(run))
    assert len({run[0] for run in waits}) > 1, "not in lockstep"
    assert cli_remote.retry_wait(0, 600.0) == cli_remote.LONGEST_WAIT_S


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


# ----- people (issue 22)

PERSON = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("person_id", ["..", ".", "", "a/..", PERSON.upper(), PERSON[:-1]])
@pytest.mark.parametrize("verb", ["name", "merge", "split", "not-this-person", "delete"])
def test_people_verbs_refuse_a_person_id_a_url_would_rewrite_and_send_nothing(person_id: str, verb: str) -> None:
    """`/collections/c/people/../name` would be sent as `/collections/c/name`: refused before sending."""
    service, sent = remote()
    args = argparse.Namespace(
        verb=verb, person_id=person_id, external_id="yao", other_person_id=PERSON, face_id=PERSON, face_ids=[PERSON]
    )
    with pytest.raises(RemoteError) as refused:
        cli_remote.people(service, args, "/collections/c")
    assert (refused.value.code, refused.value.status) == ("invalid_person_id", 400)
    assert sent == []


def test_people_name_merge_split_not_this_person_and_delete_send_their_requests(
    capsys: pytest.CaptureFixture[str],
) -> None:
    answer = {"person_id": PERSON, "faces": 2}
    service, sent = remote(*(httpx.Response(200, json=answer) for _ in range(5)))
    base = {
        "person_id": PERSON,
        "external_id": "u-1@acme.com",
        "other_person_id": "f" * 32,
        "face_id": "e" * 32,
        "face_ids": ["d" * 32, "c" * 32],
    }
    for verb in ("name", "merge", "split", "not-this-person", "delete"):
        assert cli_remote.people(service, argparse.Namespace(verb=verb, **base), "/collections/c") == 0
    assert [(request.method, request.url.path, json.loads(request.content or b"null")) for request in sent] == [
        ("POST", f"/collections/c/people/{PERSON}/name", {"external_id": "u-1@acme.com"}),
        ("POST", f"/collections/c/people/{PERSON}/merge", {"person_id": "f" * 32}),
        ("POST", f"/collections/c/people/{PERSON}/split", {"face_ids": ["d" * 32, "c" * 32]}),
        ("POST", f"/collections/c/people/{PERSON}/not-this-person", {"face_id": "e" * 32}),
        ("DELETE", f"/collections/c/people/{PERSON}", None),
    ]
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [answer] * 5


def job(state: str, stage: str, progress: float) -> httpx.Response:
    return httpx.Response(200, json={"collection": "c", "state": state, "stage": stage, "progress": progress})


@pytest.mark.parametrize(("last", "status"), [("done", 0), ("failed", 1)])
def test_people_cluster_wait_polls_until_finished_and_shows_each_stage(
    last: str, status: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli_remote.time, "sleep", lambda seconds: None)
    service, sent = remote(
        job("queued", "queued", 0.0),
        job("running", "neighbours", 0.1),
        job("running", "neighbours", 0.1),
        job(last, last, 1.0),
    )
    args = argparse.Namespace(verb="cluster", wait=True)
    assert cli_remote.people(service, args, "/collections/c") == status
    assert [(request.method, request.url.path) for request in sent] == [("POST", "/collections/c/clustering")] + [
        ("GET", "/collections/c/clustering")
    ] * 3
    out, err = capsys.readouterr()
    assert json.loads(out)["state"] == last
    assert err.splitlines() == ["clustering: queued 0%", "clustering: neighbours 10%", f"clustering: {last} 100%"]


def test_people_cluster_without_wait_prints_the_job_as_it_starts(capsys: pytest.CaptureFixture[str]) -> None:
    service, sent = remote(job("queued", "queued", 0.0))
    assert cli_remote.people(service, argparse.Namespace(verb="cluster", wait=False), "/collections/c") == 0
    assert len(sent) == 1 and json.loads(capsys.readouterr().out)["state"] == "queued"


def test_people_list_follows_the_pages(capsys: pytest.CaptureFixture[str]) -> None:
    service, sent = remote(
        httpx.Response(200, json={"people": [{"person_id": "a" * 32}], "next": "a" * 32}),
        httpx.Response(200, json={"people": [{"person_id": "b" * 32}], "next": None}),
    )
    assert cli_remote.people(service, argparse.Namespace(verb="list"), "/collections/c") == 0
    assert [request.url.params.get("after") for request in sent] == [None, "a" * 32]
    assert [json.loads(line)["person_id"] for line in capsys.readouterr().out.splitlines()] == ["a" * 32, "b" * 32]


@pytest.mark.parametrize(("health", "expected"), [({"inference": {"workers": 3}}, 6), ({}, 2)])
def test_photos_index_sends_two_photos_per_inference_worker_of_the_service(
    health: dict[str, object], expected: int
) -> None:
    service, sent = remote(httpx.Response(200, json=health))
    assert cli_remote.RemotePhotos(service).default_concurrency() == expected
    assert [request.url.path for request in sent] == ["/health"]
