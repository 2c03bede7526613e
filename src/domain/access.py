"""Who may do what: API keys with scopes (which collections, which verbs).

A key is known by its name (for logs and metrics) and the SHA-256 digest of its secret; the secret
itself is never kept. Keys are long random strings, so one fast hash is enough to make a leaked keys
file useless to an attacker (there is no password to guess): the same practice as GitHub or Stripe
tokens. A slow password hash would only slow every request down.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import FaceServiceError


class Verb(StrEnum):
    """What a key may do. The HTTP routes each need one (docs/api.md, "Scoped API keys")."""

    FACES = "faces"  # the stateless face routes: detect, embed, batch, compare
    SEARCH = "search"  # identify and verify in a collection; read a collection and its subjects
    ENROLL = "enroll"  # add faces (and so subjects) to a collection
    MANAGE = "manage"  # create/delete collections, delete subjects and faces, export (vectors out), import


ALL_VERBS = frozenset(Verb)
ALL_COLLECTIONS = "*"
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A collection name, or a prefix of one followed by `*`, or `*` alone.
COLLECTION_PATTERN = re.compile(r"\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63}\*?")
DIGEST_PREFIX = "sha256:"


class ForbiddenScope(FaceServiceError):
    """A valid key asked for something outside its scope. The message names the verb and the
    collection it lacks, never the key."""

    code = "forbidden_scope"


def digest(secret: str | bytes) -> bytes:
    """The SHA-256 of a secret, as stored and compared."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hashlib.sha256(raw).digest()


def stored_digest(secret: str) -> str:
    """The form a keys file stores: `sha256:<64 hex digits>`."""
    return DIGEST_PREFIX + digest(secret).hex()


def parse_digest(text: str) -> bytes:
    """`sha256:<64 hex digits>` back to its 32 bytes; ValueError otherwise."""
    if not text.startswith(DIGEST_PREFIX):
        raise ValueError(f"a key's hash must start with {DIGEST_PREFIX!r} (made by `face-service keys new`)")
    hex_digits = text.removeprefix(DIGEST_PREFIX)
    if not re.fullmatch(r"[0-9a-f]{64}", hex_digits):
        raise ValueError("a key's hash must be sha256: followed by 64 lower-case hex digits")
    return bytes.fromhex(hex_digits)


@dataclass(frozen=True, slots=True)
class Scope:
    """Collections (`acme`, `acme-*`, or `*`) and verbs. A key for the face routes only has no
    collections; a key with no verbs at all is for monitoring (/metrics, /health's details)."""

    collections: tuple[str, ...]
    verbs: frozenset[Verb]

    @classmethod
    def everything(cls) -> Scope:
        return cls((ALL_COLLECTIONS,), ALL_VERBS)

    @property
    def all_collections(self) -> bool:
        return ALL_COLLECTIONS in self.collections

    def covers(self, collection: str) -> bool:
        """Whether `collection` is one of this scope's collections (by name, prefix or `*`)."""
        for pattern in self.collections:
            if pattern.endswith("*"):
                if collection.startswith(pattern[:-1]):
                    return True
            elif collection == pattern:
                return True
        return False

    def allows(self, verb: Verb, collection: str | None = None) -> bool:
        """`verb` on `collection` (None: a route that names no collection)."""
        return verb in self.verbs and (collection is None or self.covers(collection))

    def sees(self, collection: str) -> bool:
        """Whether the collection shows in a listing: the scope covers it with any collection verb."""
        return bool(self.verbs - {Verb.FACES}) and self.covers(collection)

    def require(self, verb: Verb, collection: str | None = None) -> None:
        """ForbiddenScope unless `verb` on `collection` is allowed."""
        if self.allows(verb, collection):
            return
        if verb is Verb.FACES:
            raise ForbiddenScope("This API key's scope does not include the verb 'faces' (the face routes)")
        if verb not in self.verbs:
            where = f" (collection {collection!r})" if collection is not None else ""
            raise ForbiddenScope(f"This API key's scope does not include the verb {verb.value!r}{where}")
        raise ForbiddenScope(f"This API key's scope does not include collection {collection!r}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the service holds it: a name for logs and metrics, the digest of its secret, its scope."""

    name: str
    digest: bytes
    scope: Scope

    @classmethod
    def create(cls, name: str, secret_digest: bytes, collections: Iterable[str], verbs: Iterable[str]) -> ApiKey:
        """A checked key: ValueError naming what is wrong (never the secret)."""
        if not KEY_NAME.fullmatch(name):
            raise ValueError(f"key name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', first a letter or digit")
        if len(secret_digest) != hashlib.sha256().digest_size:
            raise ValueError(f"key {name!r}: the digest is not a SHA-256 digest")
        chosen: set[Verb] = set()
        for verb in verbs:
            try:
                chosen.add(Verb(verb))
            except ValueError:
                known = ", ".join(v.value for v in Verb)
                raise ValueError(f"key {name!r}: unknown verb {verb!r} (known: {known})") from None
        patterns = tuple(dict.fromkeys(collections))
        for pattern in patterns:
            if not COLLECTION_PATTERN.fullmatch(pattern):
                raise ValueError(
                    f"key {name!r}: collection {pattern!r} is not a collection name, a prefix ending in '*', or '*'"
                )
        if chosen - {Verb.FACES} and not patterns:
            raise ValueError(f"key {name!r}: verbs on collections need `collections` (a name, a prefix acme-*, or *)")
        return cls(name, secret_digest, Scope(patterns, frozenset(chosen)))


class Keyring:
    """The configured keys. `find` compares the presented secret's digest with every key's digest,
    never stopping early, so the time taken says nothing about which key (if any) came close."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys = tuple(keys)
        if not self.keys:
            raise ValueError("at least one API key is required")
        names = [key.name for key in self.keys]
        if len(set(names)) != len(names):
            raise ValueError(f"two API keys share a name: {sorted({n for n in names if names.count(n) > 1})}")
        digests = [key.digest for key in self.keys]
        if len(set(digests)) != len(digests):
            raise ValueError("two API keys have the same secret")

    def find(self, secret: bytes) -> tuple[int, ApiKey] | None:
        """The key whose secret this is, with its index; None when no key matches."""
        presented = digest(secret)
        matched = -1
        for index, key in enumerate(self.keys):
            if hmac.compare_digest(presented, key.digest):
                matched = index
        return (matched, self.keys[matched]) if matched >= 0 else None
