"""API keys from the configuration: API_KEY / API_KEYS (full access, as before) and API_KEYS_FILE
(scoped keys, stored as SHA-256 digests), and the entries `face-service keys new` prints.

A keys file is TOML (or JSON when its name ends in .json), one entry per key:

    [[keys]]
    name = "nextjs-search"          # in logs and metrics; never the secret
    hash = "sha256:9f86d0..."       # the secret's SHA-256, as `face-service keys new` prints it
    collections = ["acme"]          # names, prefixes ending in "*" (acme-*), or "*" for all
    verbs = ["search"]              # faces, search, enroll, manage
"""

from __future__ import annotations

import json
import secrets
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from domain.access import ApiKey, Keyring, Scope, digest, parse_digest, stored_digest

SECRET_PREFIX = "fsk_"  # noqa: S105 - not a secret: a face-service key: lets secret scanners and people recognise one
ENTRY_FIELDS = {"name", "hash", "collections", "verbs"}


def environment_keys(secrets_: Iterable[str]) -> list[ApiKey]:
    """API_KEY and API_KEYS: full access to everything, named env-1, env-2... in the order given."""
    return [ApiKey(f"env-{index}", digest(secret), Scope.everything()) for index, secret in enumerate(secrets_, 1)]


def keyring(environment: Iterable[str], scoped: Iterable[ApiKey]) -> Keyring:
    """Every accepted key: ValueError when two share a name or a secret."""
    return Keyring([*environment_keys(environment), *scoped])


def load_keys_file(path: Path) -> tuple[ApiKey, ...]:
    """The keys of a keys file; ValueError naming the entry and what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read it: {error.strerror or error}") from None
    try:
        document: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {error}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError("expected a `keys` list with at least one entry ([[keys]] in TOML)")
    return tuple(_entry(number, entry) for number, entry in enumerate(entries, 1))


def _entry(number: int, entry: Any) -> ApiKey:
    if not isinstance(entry, dict):
        raise ValueError(f"entry {number} is not a table")
    unknown = sorted(set(entry) - ENTRY_FIELDS)
    if unknown:
        raise ValueError(f"entry {number}: unknown field(s) {unknown} (known: {sorted(ENTRY_FIELDS)})")
    name, hashed = entry.get("name"), entry.get("hash")
    collections, verbs = entry.get("collections", []), entry.get("verbs")
    if not isinstance(name, str):
        raise ValueError(f"entry {number}: `name` must be a string")
    if not isinstance(hashed, str):
        raise ValueError(f"key {name!r}: `hash` must be a string like sha256:<64 hex digits>")
    if not _strings(collections):
        raise ValueError(f"key {name!r}: `collections` must be a list of strings")
    if not isinstance(verbs, list) or not _strings(verbs):
        raise ValueError(f"key {name!r}: `verbs` must be a list of strings")
    try:
        secret_digest = parse_digest(hashed)
    except ValueError as error:
        raise ValueError(f"key {name!r}: {error}") from None
    return ApiKey.create(name, secret_digest, collections, verbs)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def new_secret() -> str:
    """A new key: 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def file_entry(key: ApiKey, hashed: str, as_json: bool = False) -> str:
    """The keys file's entry for `key` (TOML, or one JSON object for a JSON keys file)."""
    fields = {
        "name": key.name,
        "hash": hashed,
        "collections": list(key.scope.collections),
        "verbs": sorted(verb.value for verb in key.scope.verbs),
    }
    if as_json:
        return json.dumps(fields)
    lines = ["[[keys]]", *(f"{field} = {json.dumps(value)}" for field, value in fields.items())]
    return "\n".join(lines)


def new_key(name: str, collections: list[str], verbs: list[str], as_json: bool = False) -> tuple[str, str]:
    """A new secret and its keys-file entry; ValueError when the name or scope is unusable."""
    secret = new_secret()
    hashed = stored_digest(secret)
    key = ApiKey.create(name, parse_digest(hashed), collections, verbs)
    return secret, file_entry(key, hashed, as_json)
