"""API-key authentication and scopes: `Authorization: Bearer <key>`, checked in constant time, then
the key's scope against what the route needs (docs/api.md, "Scoped API keys")."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from adapters.http.admission import RateLimiter
from adapters.http.errors import UnauthorizedError
from domain.access import ApiKey, ForbiddenScope, Keyring, Scope, Verb

# What each protected route needs, by operation id: one table, so that a route cannot be added
# without deciding (a route missing here is refused to every key; tests/http/test_scopes.py checks all).
# The collection is the route's `name` path parameter; `createCollection` and `listCollections`
# name theirs in the body or answer, and check in the handler.
ROUTE_VERBS: dict[str, Verb | None] = {
    "verifyFace": Verb.FACES,
    "extractEmbedding": Verb.FACES,
    "batchExtract": Verb.FACES,
    "compareFaces": Verb.FACES,
    "searchCollection": Verb.SEARCH,
    "verifySubject": Verb.SEARCH,
    "getCollection": Verb.SEARCH,
    "listSubjects": Verb.SEARCH,
    "getSubject": Verb.SEARCH,  # MANAGE with include=embeddings: vectors out, as an export
    "enrollFace": Verb.ENROLL,
    "indexPhoto": Verb.ENROLL,
    "deletePhoto": Verb.ENROLL,  # photos are the enroll verb's, both ways (docs/api.md, "Photos")
    "listPhotos": Verb.SEARCH,
    "getPhoto": Verb.SEARCH,
    "searchPhotos": Verb.SEARCH,
    "listPeople": Verb.SEARCH,
    "getPerson": Verb.SEARCH,
    "listPersonPhotos": Verb.SEARCH,
    "getClustering": Verb.SEARCH,
    "namePerson": Verb.MANAGE,
    "mergePeople": Verb.MANAGE,  # people are corrected by the manage verb (docs/api.md, "People")
    "splitPerson": Verb.MANAGE,
    "notThisPerson": Verb.MANAGE,
    "deletePerson": Verb.MANAGE,  # as deleteSubject and deleteFace
    "startClustering": Verb.MANAGE,
    "createCollection": Verb.MANAGE,  # on the name in the body
    "deleteCollection": Verb.MANAGE,
    "deleteSubject": Verb.MANAGE,
    "deleteFace": Verb.MANAGE,
    "exportCollection": Verb.MANAGE,
    "importCollection": Verb.MANAGE,
    "listCollections": None,  # any key; the answer lists only the collections its scope covers
    "metrics": None,  # any key: counts and timings by route, no collection names, ids or faces
    "options": None,  # any key: Litestar's OPTIONS answer, the methods of a path
}
STATE_KEY = "api_key"  # where the guard leaves the caller's ApiKey in the request's scope state


def required_verb(operation_id: str, query: Any) -> Verb | None:
    verb = ROUTE_VERBS[operation_id]
    # Every `include` value: a repeated parameter must not hide the one that asks for vectors.
    if operation_id == "getSubject" and "embeddings" in query.getall("include", []):
        return Verb.MANAGE
    return verb


def presented_secret(connection: ASGIConnection[Any, Any, Any, Any]) -> bytes | None:
    """The bearer token's bytes, or None without one."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    # Header values arrive as bytes that Litestar decodes as latin-1: re-encoding restores the bytes
    # the caller sent, whose digest is compared with each configured key's.
    return token.strip().encode("latin-1", errors="replace")


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    """The key the guard admitted for this request."""
    key: ApiKey = connection.scope["state"][STATE_KEY]  # type: ignore[typeddict-item]
    return key


def caller_scope(connection: ASGIConnection[Any, Any, Any, Any]) -> Scope:
    return caller(connection).scope


class ApiKeyGuard:
    """A Litestar guard: the key must be one of the configured keys (several allow rotation and
    scopes), then its scope must allow the route's verb on the route's collection (403
    `forbidden_scope`), then the per-key rate limit, if there is one, applies. Keys are never
    logged or echoed; their names are."""

    def __init__(self, keys: Keyring, rate_limiter: RateLimiter | None = None) -> None:
        self._keys = keys
        self._rate_limiter = rate_limiter

    def __deepcopy__(self, _memo: dict[int, Any]) -> ApiKeyGuard:
        # Litestar copies a router's guards when it registers them; this one is shared on purpose
        # (its rate limits, and /health's use of it to tell callers apart).
        return self

    def identify(self, connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[int, ApiKey] | None:
        """The caller's key (and its index), or None without a valid one. Checks every key."""
        secret = presented_secret(connection)
        return None if secret is None else self._keys.find(secret)

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        # A coroutine, though it never awaits: Litestar runs a plain-function guard on a thread for
        # every request, a hop to a thread and back (and the rate limits would be counted there).
        found = self.identify(connection)
        if found is None:
            raise UnauthorizedError()
        index, key = found
        state = connection.scope.setdefault("state", {})  # type: ignore[typeddict-item]
        state[STATE_KEY] = key
        state["key_name"] = key.name  # for the access log line and the per-key metric
        operation_id = getattr(handler, "operation_id", None)
        if operation_id is None and connection.scope.get("method") == "OPTIONS":
            operation_id = "options"  # the OPTIONS answer Litestar makes for every path: its methods
        operation_id = operation_id if isinstance(operation_id, str) else ""
        if operation_id not in ROUTE_VERBS:  # a route nobody decided on is refused to every key
            raise ForbiddenScope("This route is not open to any API key")
        verb = required_verb(operation_id, connection.query_params)
        if verb is not None:
            collection = connection.path_params.get("name")
            key.scope.require(verb, collection if isinstance(collection, str) else None)
        # Metrics scrapes come every few seconds from Prometheus; they never spend the key's budget.
        if self._rate_limiter is not None and connection.scope.get("path") != "/metrics":
            self._rate_limiter.check(index)
