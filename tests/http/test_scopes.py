"""Scoped API keys over HTTP, in the settings and the CLI; /health without a key; what /health never shows."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar, Router, get
from litestar.testing import TestClient

from adapters.http.auth import ROUTE_VERBS, ApiKeyGuard
from adapters.http.errors import handle_domain_error
from adapters.wire.presenters import without_locations
from app import cli
from app.keys import keyring, new_key
from app.settings import Settings, SettingsError
from domain.access import ApiKey, Keyring, Scope, Verb, digest
from domain.errors import FaceServiceError
from tests.support.services import API_KEY, AUTH, make_client, settings_for

Client = TestClient  # type: ignore[type-arg]
FAKE_MODEL = "fake:00000000"


def unit(seed: int) -> list[float]:
    vector = np.random.default_rng(seed).standard_normal(512)
    return list(vector / np.linalg.norm(vector))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def keys_file(path: Path, *entries: tuple[str, list[str], list[str]]) -> dict[str, str]:
    """A TOML keys file with these (name, collections, verbs); the secrets by name."""
    made = {name: new_key(name, collections, verbs) for name, collections, verbs in entries}
    path.write_text("\n\n".join(entry for _, entry in made.values()) + "\n")
    return {name: secret for name, (secret, _) in made.items()}


# --- the keys file and the settings ---------------------------------------------------------------


def test_a_toml_keys_file_holds_hashes_and_scopes(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    secrets = keys_file(path, ("nextjs-search", ["acme"], ["search"]), ("tenants", ["acme-*", "globex"], ["enroll"]))
    text = path.read_text()
    assert all(secret not in text for secret in secrets.values())  # hashed at rest
    settings = Settings.from_env({"API_KEY": API_KEY, "API_KEYS_FILE": str(path)})
    search, tenants = settings.scoped_keys
    assert search.name == "nextjs-search" and search.digest == digest(secrets["nextjs-search"])
    assert search.scope == Scope(("acme",), frozenset({Verb.SEARCH}))
    assert tenants.scope == Scope(("acme-*", "globex"), frozenset({Verb.ENROLL}))
    assert [key.name for key in settings.keyring().keys] == ["env-1", "nextjs-search", "tenants"]
    assert settings.keyring().keys[0].scope == Scope.everything()  # API_KEY: full access, as before


def test_a_json_keys_file_works_the_same(tmp_path: Path) -> None:
    secret, entry = new_key("exporter", ["*"], ["manage"], as_json=True)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [json.loads(entry)]}))
    settings = Settings.from_env({"API_KEYS_FILE": str(path)})
    (key,) = settings.keyring().keys
    assert key.name == "exporter" and key.scope.all_collections and key.scope.verbs == {Verb.MANAGE}
    assert settings.keyring().find(secret.encode()) == (0, key)


def test_with_only_a_keys_file_no_key_is_generated(tmp_path: Path) -> None:
    keys_file(tmp_path / "keys.toml", ("only", ["*"], ["search"]))
    settings = Settings.from_env({"API_KEYS_FILE": str(tmp_path / "keys.toml")})
    assert settings.api_keys == () and not settings.api_key_generated
    assert [key.name for key in settings.keyring().keys] == ["only"]


ENTRY = {"name": "k", "hash": "sha256:" + "ab" * 32, "collections": ["acme"], "verbs": ["search"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verbs": ["serach"]}, "unknown verb 'serach'"),
        ({"verbs": "search"}, "`verbs` must be a list"),
        ({"collections": []}, "need `collections`"),
        ({"collections": ["ac*me"]}, "collection 'ac*me'"),
        ({"collections": ["acme\n"]}, "collection 'acme\\n'"),
        ({"collections": ["../x"]}, "collection '../x'"),
        ({"name": "has space"}, "key name 'has space'"),
        ({"name": "trailing\n"}, "key name 'trailing\\n'"),
        ({"hash": "ab" * 32}, "must start with 'sha256:'"),
        ({"hash": "sha256:" + "AB" * 32}, "64 lower-case hex digits"),
        ({"hash": "sha256:abc"}, "64 lower-case hex digits"),
        ({"collection": ["acme"]}, "unknown field(s) ['collection']"),
    ],
)
def test_a_bad_keys_file_entry_stops_start_up_naming_it(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{**ENTRY, **change}]}))
    with pytest.raises(SettingsError, match="API_KEYS_FILE") as raised:
        Settings.from_env({"API_KEYS_FILE": str(path)})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("keys = 3", "a `keys` list"), ("[[keys]\n", "not valid TOML"), ("", "a `keys` list")],
)
def test_a_keys_file_that_is_no_keys_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"API_KEYS_FILE": str(path)})
    with pytest.raises(SettingsError, match="no such file"):
        Settings.from_env({"API_KEYS_FILE": str(tmp_path / "missing.toml")})


def test_two_keys_with_one_secret_or_one_name_are_refused(tmp_path: Path) -> None:
    secret, entry = new_key("twin", ["acme"], ["search"])
    path = tmp_path / "keys.toml"
    path.write_text(entry + "\n")
    with pytest.raises(SettingsError, match="the same secret") as raised:
        Settings.from_env({"API_KEY": secret, "API_KEYS_FILE": str(path)})  # which scope would it get?
    assert secret not in str(raised.value)
    path.write_text(entry + "\n\n" + new_key("twin", ["acme"], ["search"])[1] + "\n")
    with pytest.raises(SettingsError, match="share a name"):
        Settings.from_env({"API_KEYS_FILE": str(path)})


# --- scopes ----------------------------------------------------------------------------------------


def test_a_scope_covers_names_prefixes_and_everything() -> None:
    scope = Scope(("acme", "globex-*"), frozenset({Verb.SEARCH}))
    assert scope.covers("acme") and scope.covers("globex-eu") and scope.covers("globex-")
    assert not scope.covers("acme2") and not scope.covers("acm") and not scope.covers("globex")
    assert scope.allows(Verb.SEARCH, "acme") and not scope.allows(Verb.ENROLL, "acme")
    assert not scope.allows(Verb.FACES) and Scope.everything().allows(Verb.MANAGE, "anything")
    faces_only = Scope((), frozenset({Verb.FACES}))
    assert faces_only.allows(Verb.FACES) and not faces_only.sees("acme")


def test_a_key_is_found_by_comparing_with_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the first key matching still costs a comparison with every other key."""
    keys = Keyring(ApiKey(f"k{i}", digest(f"secret-{i}"), Scope.everything()) for i in range(5))
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    found = keys.find(b"secret-0")
    assert found is not None and found[1].name == "k0"
    assert compared == [key.digest for key in keys.keys]
    compared.clear()
    assert keys.find(b"secret-9") is None and len(compared) == 5


# --- over HTTP -------------------------------------------------------------------------------------


@pytest.fixture
def scoped(tmp_path: Path) -> Iterator[tuple[Client, dict[str, str]]]:
    """A service with the full-access API_KEY and scoped keys; collections acme, acme-eu, globex, each
    with subject `s1` enrolled (by embedding)."""
    secrets = keys_file(
        tmp_path / "keys.toml",
        ("nextjs-search", ["acme"], ["search"]),
        ("nextjs-search-next", ["acme"], ["search"]),  # rotation: a second key for the same scope
        ("eu-enroller", ["acme-*"], ["enroll", "search"]),
        ("acme-admin", ["acme"], ["manage"]),
        ("embedder", [], ["faces"]),
    )
    settings = settings_for("fake", API_KEYS_FILE=str(tmp_path / "keys.toml"), GALLERY_STORE="memory")
    with make_client(settings) as client:
        for name in ("acme", "acme-eu", "globex"):
            assert client.post("/collections", headers=AUTH, json={"name": name}).status_code == 201
            enrolled = client.post(
                f"/collections/{name}/subjects/s1/faces", headers=AUTH, json={"embedding": unit(1), "model": FAKE_MODEL}
            )
            assert enrolled.status_code == 201
        yield client, secrets


EMBEDDING = {"embedding": unit(1), "model": FAKE_MODEL}
EXPORT_LINE = json.dumps({"collection": "acme", "model": FAKE_MODEL, "dimension": 512, "threshold": 0.4})
# (method, path, json body) of every protected route, and the verb each needs, on collection `acme`
ROUTES: list[tuple[str, str, Any, Verb | None]] = [
    ("POST", "/verify-face", {"image_base64": "AAAA"}, Verb.FACES),
    ("POST", "/extract-embedding", {"image_base64": "AAAA"}, Verb.FACES),
    ("POST", "/batch-extract", {"images": ["AAAA"]}, Verb.FACES),
    ("POST", "/compare-faces", {"embedding_a": unit(1), "embedding_b": unit(2)}, Verb.FACES),
    ("POST", "/collections/acme/search", EMBEDDING, Verb.SEARCH),
    ("POST", "/collections/acme/subjects/s1/verify", EMBEDDING, Verb.SEARCH),
    ("GET", "/collections/acme", None, Verb.SEARCH),
    ("GET", "/collections/acme/subjects", None, Verb.SEARCH),
    ("GET", "/collections/acme/subjects/s1", None, Verb.SEARCH),
    ("GET", "/collections/acme/subjects/s1?include=embeddings", None, Verb.MANAGE),
    ("GET", "/collections/acme/subjects/s1?include=nothing&include=embeddings", None, Verb.MANAGE),
    ("POST", "/collections/acme/subjects/s2/faces", EMBEDDING, Verb.ENROLL),
    ("POST", "/collections", {"name": "acme"}, Verb.MANAGE),
    ("GET", "/collections/acme/export", None, Verb.MANAGE),
    ("POST", "/collections/acme/import", None, Verb.MANAGE),
    ("DELETE", "/collections/acme/faces/no-such-face", None, Verb.MANAGE),
    ("DELETE", "/collections/acme/subjects/no-such-subject", None, Verb.MANAGE),
    ("DELETE", f"/collections/acme/people/{'0' * 32}", None, Verb.MANAGE),
    ("DELETE", "/collections/acme", None, Verb.MANAGE),
]


def call(client: Client, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    if path.endswith("/import"):
        headers = {**headers, "Content-Type": "application/x-ndjson"}
        return client.request(method, path, headers=headers, content=EXPORT_LINE + "\n")
    return client.request(method, path, headers=headers, json=body)


@pytest.mark.parametrize(("key", "verbs"), [("nextjs-search", {Verb.SEARCH}), ("acme-admin", {Verb.MANAGE})])
def test_a_key_may_do_its_verbs_on_its_collections_and_nothing_else(
    scoped: tuple[Client, dict[str, str]], key: str, verbs: set[Verb]
) -> None:
    client, secrets = scoped
    for method, path, body, verb in ROUTES:
        answer = call(client, method, path, body, bearer(secrets[key]))
        if verb in verbs:
            assert answer.status_code != 403, (method, path, answer.text)
            assert answer.status_code < 500, (method, path, answer.text)
        else:
            assert (answer.status_code, answer.json()["code"]) == (403, "forbidden_scope"), (method, path)
            assert f"'{verb.value}'" in answer.json()["error"], answer.json()  # names what it lacks
            assert secrets[key] not in answer.text and key not in answer.text  # never the key


def test_the_least_privilege_search_key_searches_its_collection_only(scoped: tuple[Client, dict[str, str]]) -> None:
    """The Next.js server's key: search `acme`, nothing else; a collection outside its scope is 403
    whether or not it exists (no way to learn what other collections there are)."""
    client, secrets = scoped
    for name in ("nextjs-search", "nextjs-search-next"):  # rotation: both keys of one scope work
        found = client.post("/collections/acme/search", headers=bearer(secrets[name]), json=EMBEDDING)
        assert found.status_code == 200 and found.json()["results"][0]["decision"]["external_id"] == "s1"
    for collection in ("globex", "acme-eu", "does-not-exist"):
        refused = client.post(
            f"/collections/{collection}/search", headers=bearer(secrets["nextjs-search"]), json=EMBEDDING
        )
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_scope")
        assert refused.json()["error"] == f"This API key's scope does not include collection '{collection}'"
    listed = client.get("/collections", headers=bearer(secrets["nextjs-search"])).json()
    assert [c["name"] for c in listed["collections"]] == ["acme"]
    everything = client.get("/collections", headers=AUTH).json()
    assert sorted(c["name"] for c in everything["collections"]) == ["acme", "acme-eu", "globex"]


def test_a_prefix_scope_covers_the_collections_it_starts(scoped: tuple[Client, dict[str, str]]) -> None:
    client, secrets = scoped
    key = bearer(secrets["eu-enroller"])
    enrolled = client.post("/collections/acme-eu/subjects/s9/faces", headers=key, json=EMBEDDING)
    assert enrolled.status_code == 201
    assert client.post("/collections/acme-eu/search", headers=key, json=EMBEDDING).status_code == 200
    for collection in ("acme", "globex"):  # `acme-*` covers neither
        refused = client.post(f"/collections/{collection}/subjects/s9/faces", headers=key, json=EMBEDDING)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_scope")
    listed = client.get("/collections", headers=key).json()
    assert [c["name"] for c in listed["collections"]] == ["acme-eu"]
    created = client.post("/collections", headers=key, json={"name": "acme-fr"})
    assert (created.status_code, created.json()["code"]) == (403, "forbidden_scope")  # enroll is not manage


def test_a_manage_key_creates_only_within_its_scope(scoped: tuple[Client, dict[str, str]]) -> None:
    client, secrets = scoped
    key = bearer(secrets["acme-admin"])
    refused = client.post("/collections", headers=key, json={"name": "globex2"})
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_scope")
    assert "'globex2'" in refused.json()["error"]
    assert client.get("/collections/globex2", headers=AUTH).status_code == 404  # nothing was created
    exported = client.get("/collections/acme/export", headers=key)
    assert exported.status_code == 200 and len(exported.text.splitlines()) == 2
    assert client.delete("/collections/acme", headers=key).status_code == 204
    assert client.get("/collections/acme", headers=AUTH).status_code == 404


def test_a_key_without_verbs_reads_metrics_and_health_only(tmp_path: Path) -> None:
    """A monitoring key (Prometheus, a dashboard): /metrics and /health's details, nothing else."""
    secrets = keys_file(tmp_path / "keys.toml", ("prometheus", [], []))
    with make_client(settings_for("fake", API_KEYS_FILE=str(tmp_path / "keys.toml"))) as client:
        client.post("/collections", headers=AUTH, json={"name": "acme"})
        key = bearer(secrets["prometheus"])
        assert client.get("/metrics", headers=key).status_code == 200
        health = client.get("/health", headers=key).json()
        assert health["model_id"] == FAKE_MODEL and health["gallery"]["collections"] == []
        assert client.get("/collections", headers=key).json() == {"collections": []}
        for method, path, body, _ in ROUTES:
            answer = call(client, method, path, body, key)
            assert (answer.status_code, answer.json()["code"]) == (403, "forbidden_scope"), (method, path)


def test_a_faces_key_embeds_and_sees_no_collection(scoped: tuple[Client, dict[str, str]]) -> None:
    client, secrets = scoped
    key = bearer(secrets["embedder"])
    compared = client.post("/compare-faces", headers=key, json={"embedding_a": unit(1), "embedding_b": unit(1)})
    assert compared.status_code == 200 and compared.json()["match"] is True
    assert client.get("/collections", headers=key).json() == {"collections": []}
    refused = client.get("/collections/acme", headers=key)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden_scope")


def test_a_wrong_or_missing_key_is_still_401(scoped: tuple[Client, dict[str, str]]) -> None:
    client, secrets = scoped
    for headers in ({}, bearer("wrong-key-0123456789"), bearer(secrets["nextjs-search"] + "x")):
        for method, path, body, _ in ROUTES:
            answer = call(client, method, path, body, headers)
            assert (answer.status_code, answer.json()["code"]) == (401, "unauthorized"), (method, path)


def test_key_names_reach_logs_and_metrics_never_keys(
    scoped: tuple[Client, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    client, secrets = scoped
    with caplog.at_level(logging.INFO, logger="face_service.access"):
        client.post("/collections/acme/search", headers=bearer(secrets["nextjs-search"]), json=EMBEDDING)
        client.post("/collections/globex/search", headers=bearer(secrets["nextjs-search"]), json=EMBEDDING)
    lines = [record for record in caplog.records if record.name == "face_service.access"]
    assert [(getattr(r, "key", None), getattr(r, "status", None)) for r in lines] == [
        ("nextjs-search", 200),
        ("nextjs-search", 403),
    ]
    refused = client.post("/collections", headers=bearer(secrets["acme-admin"]), json={"name": "globex2"})
    assert refused.status_code == 403  # refused by the handler (the name is in the body), counted alike
    exposition = client.get("/metrics", headers=bearer(secrets["embedder"])).text  # any valid key
    assert 'face_service_api_key_requests_total{key="acme-admin",outcome="forbidden"} 1.0' in exposition
    assert 'face_service_api_key_requests_total{key="nextjs-search",outcome="allowed"} 1.0' in exposition
    assert 'face_service_api_key_requests_total{key="nextjs-search",outcome="forbidden"} 1.0' in exposition
    for secret in [*secrets.values(), API_KEY]:
        assert secret not in exposition and all(secret not in r.getMessage() for r in caplog.records)
        assert hashlib.sha256(secret.encode()).hexdigest() not in exposition


def test_every_protected_route_has_a_verb() -> None:
    """The table the guard reads names every guarded route, and only routes that exist."""
    app = make_client(settings_for("fake", METRICS="protected")).app
    guarded: set[str] = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.resolve_guards() and handler.operation_id is not None:  # None: Litestar's OPTIONS
                guarded.add(handler.operation_id)
    assert guarded | {"options"} == set(ROUTE_VERBS)


def test_options_needs_a_key_and_no_verb(scoped: tuple[Client, dict[str, str]]) -> None:
    client, secrets = scoped
    assert client.options("/collections/globex").status_code == 401
    answered = client.options("/collections/globex", headers=bearer(secrets["embedder"]))
    assert answered.status_code == 204 and "DELETE" in answered.headers["allow"]


def test_a_route_nobody_gave_a_verb_is_refused_to_every_key() -> None:
    @get("/new-route", operation_id="notInTheTable", sync_to_thread=False)
    def new_route() -> str:
        return "reached"

    guard = ApiKeyGuard(keyring([API_KEY], []))
    app = Litestar(
        [Router("/", route_handlers=[new_route], guards=[guard])],
        exception_handlers={FaceServiceError: handle_domain_error},
    )
    with TestClient(app) as client:
        answer = client.get("/new-route", headers=AUTH)  # the full-access key
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden_scope")


# --- /health ---------------------------------------------------------------------------------------


def test_health_with_a_scoped_key_lists_only_its_collections(scoped: tuple[Client, dict[str, str]]) -> None:
    client, secrets = scoped
    public = client.get("/health")
    assert public.status_code == 200 and public.json() == {"status": "healthy"}
    scoped_health = client.get("/health", headers=bearer(secrets["eu-enroller"])).json()
    assert scoped_health["model_id"] == FAKE_MODEL
    gallery = scoped_health["gallery"]
    assert gallery["collections"] == [{"name": "acme-eu", "model": FAKE_MODEL}]
    assert gallery["detail"] == "ok"  # the store's own detail counts every tenant's collections
    full = client.get("/health", headers=AUTH).json()["gallery"]
    assert sorted(c["name"] for c in full["collections"]) == ["acme", "acme-eu", "globex"]
    assert full["detail"] == "3 collections, 3 faces"


def test_health_never_shows_the_data_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "secret-location"
    env = {"GALLERY_STORE": "sqlite", "DATA_DIR": str(data_dir)}
    with make_client(settings_for("fake", **env)) as first, make_client(settings_for("fake", **env)) as second:
        first.post("/collections", headers=AUTH, json={"name": "acme"})
        served = first.get("/health", headers=AUTH)
        assert served.json()["gallery"]["detail"] == "1 collections, 0 faces"
        locked = second.get("/health", headers=AUTH)  # the first holds the file's lock
        gallery = locked.json()["gallery"]
        assert gallery["ok"] is False and "open in another process" in gallery["detail"]
        for answer in (served, locked):
            assert str(tmp_path) not in answer.text and "secret-location" not in answer.text


def test_health_never_shows_the_database_url() -> None:
    url = "postgresql://nobody:hunter2@127.0.0.1:9/none"  # nothing listens on the discard port
    with make_client(settings_for("fake", DATABASE_URL=url)) as client:
        health = client.get("/health", headers=AUTH)
        assert health.json()["gallery"]["ok"] is False
        assert "hunter2" not in health.text and url not in health.text and "postgresql://" not in health.text


def test_locations_are_replaced_by_their_names() -> None:
    hidden = (("data", "DATA_DIR"), ("/srv/app/data", "DATA_DIR"), ("postgresql://u:p@db/x", "DATABASE_URL"))
    assert without_locations("data/gallery.sqlite3: 1 collections", hidden) == "DATA_DIR/gallery.sqlite3: 1 collections"
    assert without_locations("the database in data is full", hidden) == "the database in DATA_DIR is full"
    assert without_locations("/srv/app/data/gallery.sqlite3 is locked", hidden) == "DATA_DIR/gallery.sqlite3 is locked"
    assert without_locations("cannot reach postgresql://u:p@db/x", hidden) == "cannot reach DATABASE_URL"
    assert without_locations("at /var/other/place: gone; see https://x.example/a?b") == "at <path>: gone; see <url>"
    assert without_locations("3 collections, 1/2 faces") == "3 collections, 1/2 faces"


# --- the CLI ---------------------------------------------------------------------------------------


def test_keys_new_prints_the_entry_on_stdout_and_the_key_once_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["keys", "new", "--name", "nextjs-search", "--collections", "acme", "--verbs", "search"]) == 0
    printed = capsys.readouterr()
    entry = tomllib.loads(printed.out)["keys"][0]
    secret = printed.err.strip().splitlines()[-1]
    assert secret.startswith("fsk_") and len(secret) > 40 and secret not in printed.out
    assert entry == {
        "name": "nextjs-search",
        "hash": "sha256:" + hashlib.sha256(secret.encode()).hexdigest(),
        "collections": ["acme"],
        "verbs": ["search"],
    }
    (tmp_path / "keys.toml").write_text(printed.out)  # as `>> keys.toml` would
    settings = settings_for("fake", API_KEYS_FILE=str(tmp_path / "keys.toml"))
    with make_client(settings) as client:
        client.post("/collections", headers=AUTH, json={"name": "acme"})
        assert client.get("/collections/acme", headers=bearer(secret)).status_code == 200
        assert client.delete("/collections/acme", headers=bearer(secret)).status_code == 403

    monkeypatch.setenv("API_KEY", API_KEY)
    monkeypatch.setenv("API_KEYS_FILE", str(tmp_path / "keys.toml"))
    assert cli.main(["keys", "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed == [
        {"name": "env-1", "collections": ["*"], "verbs": ["enroll", "faces", "manage", "search"]},
        {"name": "nextjs-search", "collections": ["acme"], "verbs": ["search"]},
    ]


def test_keys_new_refuses_an_unusable_scope(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["keys", "new", "--name", "x", "--collections", "acme", "--verbs", "search,delete"]) == 2
    printed = capsys.readouterr()
    assert "unknown verb 'delete'" in printed.err and printed.out == ""
    assert cli.main(["keys", "new", "--name", "x", "--verbs", "search"]) == 2
    assert "need `collections`" in capsys.readouterr().err
